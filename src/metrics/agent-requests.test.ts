import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HullError } from '../errors.js';
import { timedAgentRequest } from './agent-requests.js';
import { OwnerMetrics } from './owner-metrics.js';

test("a sandbox owner's registry times each agent request by method and counts failures by code", async () => {
  const metrics = new OwnerMetrics('box', 'monitor');
  try {
    await timedAgentRequest(
      'StartContainer',
      async () => 'ok',
      (e) => e,
    );
    await timedAgentRequest(
      'StartContainer',
      async () => 'ok',
      (e) => e,
    );
    await assert.rejects(
      timedAgentRequest(
        'ExecProcess',
        async () => {
          throw new HullError('ERR_NOT_FOUND', 'no such container');
        },
        (e) => e,
      ),
    );
    metrics.failed('ERR_STATE');
    const text = await (await metrics.registry()).metrics();
    for (const line of [
      'hull_agent_request_duration_seconds_count{sandbox="box",method="StartContainer"} 2',
      'hull_agent_request_duration_seconds_count{sandbox="box",method="ExecProcess"} 1',
      'hull_agent_request_failures_total{sandbox="box",method="ExecProcess",code="ERR_NOT_FOUND"} 1',
      'hull_failures_total{code="ERR_STATE",source="monitor"} 1',
    ]) {
      assert.ok(text.split('\n').includes(line), `${line} in\n${text}`);
    }
  } finally {
    metrics.stop();
  }
  await timedAgentRequest(
    'StartContainer',
    async () => 'ok',
    (e) => e,
  );
  const after = (await (await metrics.registry()).metrics()).split('\n');
  const line = 'hull_agent_request_duration_seconds_count{sandbox="box",method="StartContainer"} 2';
  assert.ok(after.includes(line), 'stopped: no longer counting');
});
