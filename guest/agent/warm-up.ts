import { mkdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultSpec } from '../../src/oci/default-spec.js';
import type { Spec } from '../../src/oci/spec.js';
import { crunArgs } from './crun.js';
import { mayAdministerNetwork } from './kernel-modules.js';
import { OutputPipe } from './output-pipe.js';
import { processPipes } from './pipes.js';
import { encodeSpawnRequest, parseSpawnReport } from './spawn-server.js';
import { networkSysctls, toGuestSpec } from './spec.js';
import { StepClock } from './steps.js';

/**
 * A container's create runs JavaScript that nothing before it ran: V8 parses and compiles each
 * function at its first call, and Node's fs, stream and pipe code takes its first paths. Under
 * software emulation that is tens of milliseconds of a clone's first create (the spec's JSON
 * alone took 15-25 ms). A VM template is saved after the agent's start, so running the same
 * code once then, on a sample container and a scratch directory, leaves it compiled in every
 * clone. Nothing here touches a container, the share or crun.
 */
export async function warmUpCreatePath(scratchDir: string): Promise<void> {
  const clock = new StepClock();
  const sample = sampleSpec();
  const parsed = JSON.parse(Buffer.from(JSON.stringify(sample)).toString('utf8')) as Spec;
  const spec = toGuestSpec(parsed, {
    containerId: 'warm-up',
    rootfs: '/run/hull/shared/warm-up',
    sharedMounts: new Map([[0, '/run/hull/shared/m0']]),
  });
  networkSysctls(parsed);
  mayAdministerNetwork(spec.process?.capabilities);
  encodeSpawnRequest('r0', ['PATH=/usr/bin'], ['--plain', '/usr/bin/crun', ...crunArgs(['run'], 'log')]);
  parseSpawnReport('1');
  clock.lap('spec');
  // Done and removed before the agent takes its first request, so no container's bundle (even
  // one named .warm-up) meets it.
  const dir = join(scratchDir, '.warm-up');
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
    readFileSync(join(dir, 'config.json'), 'utf8');
    await pipeRoundTrip();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  clock.lap('files');
}

/** A process's pipes as a create makes them, written to and read to their end. */
async function pipeRoundTrip(): Promise<void> {
  const pipes = processPipes(false);
  const outputs = [new OutputPipe(pipes.stdout), new OutputPipe(pipes.stderr)];
  // The child's ends, written once and closed, as a process that prints and exits leaves them.
  writeSync(pipes.childFds[1], 'x');
  pipes.closeChildEnds();
  const signal = AbortSignal.timeout(5000);
  for (const output of outputs) {
    while ((await output.read(0, signal)).length > 0) {}
  }
}

/**
 * A container configuration of the shape the host sends: runc's default spec, with a bind
 * mount as most containers have.
 */
function sampleSpec(): Spec {
  const spec = defaultSpec(['sh'], { terminal: false });
  spec.hostname = 'warm-up';
  spec.mounts = [
    { destination: '/data', type: 'bind', source: '/data', options: ['rbind', 'ro'] },
    ...(spec.mounts ?? []),
  ];
  return spec;
}
