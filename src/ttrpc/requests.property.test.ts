import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create, type DescService } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import fc from 'fast-check';
import { Task } from '../gen/containerd/task/v2/shim_pb.js';
import { AgentService, Health } from '../gen/hull/agent/v1/agent_pb.js';
import { Monitor } from '../gen/hull/monitor/v1/monitor_pb.js';
import { streamPair } from '../testing/stream-pair.js';
import { TtrpcClient } from './client.js';
import { encodeFrame, FrameDecoder, FrameType } from './frame.js';
import { fuzzRuns } from './fuzz-runs.js';
import { TtrpcServer } from './server.js';
import { TtrpcError } from './status.js';

const pair = streamPair;

/** Every method of `service` answers an empty message: what is fuzzed is decoding its request. */
function echoEmpty<S extends GenServiceMethods>(service: GenService<S>): never {
  const desc = service as unknown as DescService;
  return Object.fromEntries(desc.methods.map((m) => [m.localName, async () => ({})])) as never;
}

const SERVICES = [Monitor, AgentService, Task] as unknown as DescService[];

function fuzzedServer(): TtrpcServer {
  const server = new TtrpcServer()
    .register(Health, { check: async () => ({ version: 'fuzz' }) })
    .register(Monitor, echoEmpty(Monitor))
    .register(AgentService, echoEmpty(AgentService))
    .register(Task, echoEmpty(Task));
  return server;
}

test('any payload for any monitor, agent or shim method: an answer or an error status, and the server keeps serving', async () => {
  const server = fuzzedServer();
  const [clientSide, serverSide] = pair();
  server.serve(serverSide);
  const client = new TtrpcClient(clientSide);
  const methods = SERVICES.flatMap((s) => s.methods.map((m) => ({ service: s.typeName, method: m.name })));
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...methods),
      fc.uint8Array({ maxLength: 512 }),
      async (target, payload) => {
        try {
          await client.callRaw(target.service, target.method, payload, { signal: AbortSignal.timeout(5000) });
        } catch (err) {
          assert.ok(err instanceof TtrpcError, `a status, not ${String(err)}`);
        }
      },
    ),
    { numRuns: fuzzRuns() },
  );
  const health = await client.call(Health.method.check, create(Health.method.check.input));
  assert.equal(health.version, 'fuzz', 'still serving');
  client.close();
});

test('any bytes as a request envelope: answered with an error on the same stream, never a crash', async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 256 }), async (envelope) => {
      const server = fuzzedServer();
      const [clientSide, serverSide] = pair();
      server.serve(serverSide);
      const answered = new Promise<number>((resolve) => {
        const decoder = new FrameDecoder(
          (f) => resolve(f.streamId),
          () => resolve(-1),
        );
        clientSide.on('data', (chunk: Buffer) => decoder.push(chunk));
      });
      clientSide.write(encodeFrame(1, FrameType.REQUEST, envelope));
      const streamId = await Promise.race([
        answered,
        new Promise<number>((_, reject) => setTimeout(() => reject(new Error('no answer')), 5000)),
      ]);
      assert.equal(streamId, 1);
      clientSide.destroy();
    }),
    { numRuns: Math.min(fuzzRuns(), 20_000) },
  );
});
