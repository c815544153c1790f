import { closeSync, writeSync } from 'node:fs';
import { startupSnapshot } from 'node:v8';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { AgentService, Health } from '../../src/gen/hull/agent/v1/agent_pb.js';
import { RequestSchema } from '../../src/gen/ttrpc/ttrpc_pb.js';
import { guestLogger } from './log.js';
import { startAgent } from './main.js';

/**
 * The agent's entry point. `hull image build` runs it once with `node --build-snapshot`, in a
 * guest of the very CPU model sandboxes use (V8 refuses a snapshot made for other CPU
 * features): loading the bundle and building the protobuf descriptors then happens there, and
 * every guest starts from the saved heap (node --snapshot-blob), which under software emulation
 * saves most of a second. Run directly, it simply starts the agent.
 */
function run(): void {
  signalReady();
  startAgent().catch((err: unknown) => {
    guestLogger('agent').error('agent failed', { error: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  });
}

/**
 * One byte on fd 4 tells hull-init the agent is up: a death before it means V8 refused the
 * snapshot, and hull-init starts the agent again without one.
 */
function signalReady(): void {
  const fd = Number(process.env.HULL_READY_FD);
  if (!(fd > 2)) return;
  try {
    writeSync(fd, 'r');
    closeSync(fd);
  } catch {
    // Started by hand, without hull-init: nobody waits for the byte.
  }
}

if (startupSnapshot.isBuildingSnapshot()) {
  // Touch the message types once so their lazily built parts are in the snapshot too: every
  // request and answer of the agent's methods, each of which a clone would otherwise build
  // under software emulation at its first call.
  fromBinary(RequestSchema, toBinary(RequestSchema, create(RequestSchema, { service: 's', method: 'm' })));
  for (const method of [...Health.methods, ...AgentService.methods]) {
    fromBinary(method.input, toBinary(method.input, create(method.input)));
    fromBinary(method.output, toBinary(method.output, create(method.output)));
  }
  startupSnapshot.setDeserializeMainFunction(run);
} else {
  run();
}
