import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { AgentService, CheckResponseSchema, Health } from '../gen/hull/agent/v1/agent_pb.js';
import { RequestSchema, ResponseSchema } from '../gen/ttrpc/ttrpc_pb.js';
import { streamPair } from '../testing/stream-pair.js';
import { TtrpcClient } from './client.js';
import { encodeFrame, FrameDecoder, FrameType, MAX_PAYLOAD } from './frame.js';
import { TtrpcServer } from './server.js';
import { Code, TtrpcError } from './status.js';

const pair = streamPair;

function connected(server: TtrpcServer): TtrpcClient {
  const [clientSide, serverSide] = pair();
  server.serve(serverSide);
  return new TtrpcClient(clientSide);
}

test('a unary call reaches its handler and returns its answer, with metadata', async () => {
  const server = new TtrpcServer().register(Health, {
    check: async (_req, ctx) => ({ version: `v-${ctx.metadata.get('ns')}`, kernelRelease: '6.1' }),
  });
  const client = connected(server);
  const res = await client.call(Health.method.check, create(Health.method.check.input), {
    metadata: { ns: 'k8s' },
  });
  assert.equal(res.version, 'v-k8s');
  assert.equal(res.kernelRelease, '6.1');
  client.close();
});

test('an unknown method answers UNIMPLEMENTED', async () => {
  const client = connected(new TtrpcServer());
  await assert.rejects(
    client.call(Health.method.check, create(Health.method.check.input)),
    (err: unknown) =>
      err instanceof TtrpcError && err.code === Code.UNIMPLEMENTED && /Health\/Check/.test(err.message),
  );
  client.close();
});

test('a handler error becomes a status the client sees with its code', async () => {
  const server = new TtrpcServer().register(AgentService, {
    startContainer: async () => {
      throw new TtrpcError(Code.NOT_FOUND, 'container x not found');
    },
  } as never);
  const client = connected(server);
  await assert.rejects(
    client.call(AgentService.method.startContainer, create(AgentService.method.startContainer.input)),
    (err: unknown) =>
      err instanceof TtrpcError && err.code === Code.NOT_FOUND && err.message === 'container x not found',
  );
  client.close();
});

test('a slow call does not hold up a later one on the same connection', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const server = new TtrpcServer().register(AgentService, {
    readStdout: async () => {
      await gate;
      return { data: Buffer.from('late') };
    },
    waitProcess: async () => ({ exitStatus: 42 }),
  } as never);
  const client = connected(server);
  const slow = client.call(AgentService.method.readStdout, create(AgentService.method.readStdout.input));
  const fast = await client.call(
    AgentService.method.waitProcess,
    create(AgentService.method.waitProcess.input),
  );
  assert.equal(fast.exitStatus, 42);
  release();
  assert.equal(Buffer.from((await slow).data).toString(), 'late');
  client.close();
});

test('an aborted call rejects with the abort reason and a late answer is ignored', async () => {
  let release!: () => void;
  let entered!: () => void;
  const handlerEntered = new Promise<void>((r) => {
    entered = r;
  });
  let calls = 0;
  const server = new TtrpcServer().register(Health, {
    check: () =>
      calls++ > 0
        ? Promise.resolve({ version: 'second' })
        : new Promise((r) => {
            release = () => r({ version: 'late' });
            entered();
          }),
  });
  const client = connected(server);
  const controller = new AbortController();
  const call = client.call(Health.method.check, create(Health.method.check.input), {
    signal: controller.signal,
  });
  await handlerEntered;
  controller.abort(new Error('gave up'));
  await assert.rejects(call, /gave up/);
  release();
  await new Promise((r) => setTimeout(r, 10));
  const res = await client.call(Health.method.check, create(Health.method.check.input));
  assert.equal(res.version, 'second', 'the connection still serves calls after a dropped answer');
  client.close();
});

test("a call's timeout ends its handler's wait even after a garbage collection", async () => {
  // A long-poll read waits on nothing but the call's signal; its timeout must survive a GC.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let entered!: () => void;
  const handlerEntered = new Promise<void>((r) => {
    entered = r;
  });
  const server = new TtrpcServer().register(Health, {
    check: (_req, ctx) =>
      new Promise((_resolve, reject) => {
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
        entered();
      }),
  });
  const client = connected(server);
  const giveUp = new AbortController();
  const giveUpTimer = setTimeout(() => giveUp.abort(new Error('the call never ended')), 5000);
  const call = client.call(Health.method.check, create(Health.method.check.input), {
    signal: giveUp.signal,
    timeoutMs: 300,
  });
  await handlerEntered;
  for (let i = 0; i < 3; i++) gc();
  await assert.rejects(
    call,
    (err: unknown) => err instanceof TtrpcError && err.code === Code.DEADLINE_EXCEEDED,
  );
  clearTimeout(giveUpTimer);
  client.close();
});

test('pending calls fail with UNAVAILABLE when the connection closes', async () => {
  const [clientSide, serverSide] = pair();
  const client = new TtrpcClient(clientSide);
  const call = client.call(Health.method.check, create(Health.method.check.input));
  serverSide.destroy();
  clientSide.destroy();
  await assert.rejects(call, (err: unknown) => err instanceof TtrpcError && err.code === Code.UNAVAILABLE);
});

test('the server rejects an even stream id and answers an oversized request with RESOURCE_EXHAUSTED', async () => {
  const server = new TtrpcServer().register(Health, { check: async () => ({ version: '1' }) });
  const [raw, serverSide] = pair();
  server.serve(serverSide);
  const answers: { id: number; code: number }[] = [];
  const decoder = new FrameDecoder(
    (f) => {
      const res = fromBinary(ResponseSchema, f.payload);
      answers.push({ id: f.streamId, code: res.status?.code ?? 0 });
    },
    () => {},
  );
  raw.on('data', (c: Buffer) => decoder.push(c));
  const request = toBinary(
    RequestSchema,
    create(RequestSchema, { service: 'hull.agent.v1.Health', method: 'Check', payload: new Uint8Array() }),
  );
  raw.write(encodeFrame(2, FrameType.REQUEST, request));
  const big = Buffer.alloc(10);
  big.writeUInt32BE(MAX_PAYLOAD + 1, 0);
  big.writeUInt32BE(3, 4);
  big.writeUInt8(FrameType.REQUEST, 8);
  raw.write(Buffer.concat([big, Buffer.alloc(MAX_PAYLOAD + 1)]));
  raw.write(encodeFrame(5, FrameType.REQUEST, request));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(answers, [
    { id: 2, code: Code.INVALID_ARGUMENT },
    { id: 3, code: Code.RESOURCE_EXHAUSTED },
    { id: 5, code: Code.OK },
  ]);
  const ok = fromBinary(CheckResponseSchema, new Uint8Array());
  assert.equal(ok.version, '');
  raw.destroy();
});

test('unfinished frames on many connections cannot make the server hold more than its limit', async () => {
  let dropped = 0;
  const server = new TtrpcServer(undefined, {
    maxConnections: 64,
    maxPendingBytes: 16 << 20,
  }).whenUnfinishedFramesDropped((bytes) => {
    dropped += bytes;
  });
  const clients: Duplex[] = [];
  for (let i = 0; i < 60; i++) {
    const [clientSide, serverSide] = pair();
    server.serve(serverSide);
    clients.push(clientSide);
    // A header announcing 4 MiB, then all of it but the last byte.
    const header = Buffer.alloc(10);
    header.writeUInt32BE(MAX_PAYLOAD, 0);
    header.writeUInt32BE(1, 4);
    header.writeUInt8(FrameType.REQUEST, 8);
    clientSide.write(Buffer.concat([header, Buffer.alloc(MAX_PAYLOAD - 1)]));
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.ok(server.load.pendingBytes <= 16 << 20, `held ${server.load.pendingBytes} bytes`);
  assert.ok(server.load.connections < 60, 'connections past the limit were closed');
  const cut = dropped;
  assert.ok(cut > 0, 'the owner heard of what the cut connections held');
  const held = server.load.pendingBytes;
  for (const c of clients) c.destroy();
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(server.load, { connections: 0, pendingBytes: 0 }, 'all of it returned once they close');
  assert.equal(dropped - cut, held, 'and of every byte the others held when they closed');
});

test('connections past the limit are closed at once', async () => {
  const server = new TtrpcServer(undefined, { maxConnections: 2, maxPendingBytes: 1 << 20 });
  const ends = [pair(), pair(), pair()];
  for (const [, serverSide] of ends) server.serve(serverSide);
  assert.equal(server.load.connections, 2);
  assert.ok(ends[2]![1].destroyed, 'the third is refused');
  for (const [c] of ends) c.destroy();
});
