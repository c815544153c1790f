import { startupSnapshot } from 'node:v8';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { CheckResponseSchema } from '../../src/gen/hull/agent/v1/agent_pb.js';
import { RequestSchema } from '../../src/gen/ttrpc/ttrpc_pb.js';
import { guestLogger } from './log.js';
import { startAgent } from './main.js';

/**
 * The agent's entry point. The image builder runs it once on the host with
 * `node --build-snapshot`: loading the bundle and building the protobuf descriptors then
 * happens there, and the guest starts from the saved heap (node --snapshot-blob), which under
 * software emulation saves most of a second. Run directly, it simply starts the agent.
 */
function run(): void {
  startAgent().catch((err: unknown) => {
    guestLogger('agent').error('agent failed', { error: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  });
}

if (startupSnapshot.isBuildingSnapshot()) {
  // Touch the message types once so their lazily built parts are in the snapshot too.
  fromBinary(RequestSchema, toBinary(RequestSchema, create(RequestSchema, { service: 's', method: 'm' })));
  toBinary(CheckResponseSchema, create(CheckResponseSchema, { version: '1' }));
  startupSnapshot.setDeserializeMainFunction(run);
} else {
  run();
}
