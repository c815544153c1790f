import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Sandbox } from 'hull/sdk';
import { which } from '../../src/sys/exec.js';
import { HULL, startHull } from '../e2e/harness.js';
import { makeBusyboxBundle } from '../fixtures/bundle.js';
import { pushBusybox, startRegistry } from '../fixtures/registry.js';
import { median } from './network.js';

/** The tree the job unpacks: 200 directories of 100 small files. */
const DIRS = 200;
const FILES_PER_DIR = 100;

/**
 * The metadata-heavy job: unpack a 20,000-file tree and stat every file of it (`ls -lR`),
 * timed inside the container by the guest's (or host's) uptime, so only the job counts, not
 * how the command reached it.
 */
const JOB = [
  'rm -rf /w',
  'a=$(cut -d" " -f1 /proc/uptime)',
  'mkdir /w && tar xf /tree.tar -C /w && ls -lR /w > /dev/null',
  'b=$(cut -d" " -f1 /proc/uptime)',
  'echo "$a $b"',
].join('; ');

function jobMs(stdout: string): number {
  const [a, b] = stdout.trim().split(/\s+/).map(Number);
  if (!Number.isFinite(a) || !Number.isFinite(b))
    throw new Error(`the job printed ${JSON.stringify(stdout)}`);
  return Math.round((b! - a!) * 1000);
}

async function makeTree(scratch: string): Promise<string> {
  const tree = join(scratch, 'tree');
  for (let d = 0; d < DIRS; d++) {
    await mkdir(join(tree, `d${d}`), { recursive: true });
    for (let f = 0; f < FILES_PER_DIR; f++) await writeFile(join(tree, `d${d}`, `f${f}`), `file ${d}/${f}\n`);
  }
  const tarball = join(scratch, 'tree.tar');
  const r = spawnSync('tar', ['cf', tarball, '-C', tree, '.']);
  if (r.status !== 0) throw new Error(`tar: ${r.stderr}`);
  return tarball;
}

export interface RootfsFigures {
  files: number;
  runs: number;
  medianMs: { serveDisks: number; hullRun9p: number; runc?: number };
  ratios: { disksOver9p: number; disksOverRunc?: number; ninePOverRunc?: number };
}

/**
 * Issue 27: the job on a `hull serve` sandbox's root on disks (erofs + ext4 + overlay in the
 * guest) ÷ the same in a `hull run` container on the 9p share ÷ runc on the host, interleaved.
 */
export async function measureRootfs(scratch: string, runs: number): Promise<RootfsFigures> {
  const dir = join(scratch, 'rootfs-bench');
  await mkdir(dir);
  const tarball = await makeTree(dir);
  const bundle = join(dir, 'bundle');
  await mkdir(bundle);
  await makeBusyboxBundle(bundle, ['sh', '-c', JOB], (spec) => {
    spec.root!.readonly = false;
  });
  await copyFile(tarball, join(bundle, 'rootfs', 'tree.tar'));
  const root = join(dir, 'root');
  const registry = await startRegistry(join(dir, 'registry'));
  const api = `unix:${join(dir, 'api.sock')}`;
  const server = startHull(['--root', join(dir, 'serve-root'), 'serve', '--listen', api], { input: null });
  const runc = await which('runc');
  const samples = { serveDisks: [] as number[], hullRun9p: [] as number[], runc: [] as number[] };
  try {
    const image = await pushBusybox(dir, registry);
    await server.waitForOutput('listening on', 60_000);
    const sandbox = await Sandbox.create({ api, image, network: 'none', timeoutMs: 3_600_000 });
    try {
      await sandbox.files.write('/tree.tar', await readFile(tarball));
      for (let i = 0; i < runs; i++) {
        const onDisks = await sandbox.commands.run(JOB);
        if (onDisks.exitCode !== 0) throw new Error(`the job failed on disks: ${onDisks.stderr}`);
        samples.serveDisks.push(jobMs(onDisks.stdout));
        const viaShare = spawnSync(
          process.execPath,
          [HULL, '--root', root, 'run', '-b', bundle, `rootfs-${i}`],
          {
            encoding: 'utf8',
          },
        );
        if (viaShare.status !== 0) throw new Error(`hull run failed: ${viaShare.stderr}`);
        samples.hullRun9p.push(jobMs(viaShare.stdout));
        if (runc) {
          const host = spawnSync(
            runc,
            ['--root', join(dir, 'runc'), 'run', '-b', bundle, `rootfs-runc-${i}`],
            {
              encoding: 'utf8',
            },
          );
          if (host.status !== 0) throw new Error(`runc failed: ${host.stderr}`);
          samples.runc.push(jobMs(host.stdout));
        }
        // Each pair is minutes under TCG (the share's side above all): say each as it comes.
        process.stderr.write(
          `rootfs run ${i + 1}: disks ${samples.serveDisks.at(-1)} ms, 9p ${samples.hullRun9p.at(-1)} ms${runc ? `, runc ${samples.runc.at(-1)} ms` : ''}\n`,
        );
      }
    } finally {
      await sandbox.kill();
    }
  } finally {
    server.child.kill('SIGTERM');
    await server.result;
    await registry.stop();
  }
  const disks = median(samples.serveDisks);
  const share = median(samples.hullRun9p);
  const host = runc ? median(samples.runc) : undefined;
  return {
    files: DIRS * FILES_PER_DIR,
    runs,
    medianMs: { serveDisks: disks, hullRun9p: share, runc: host },
    ratios: {
      disksOver9p: Number((disks / share).toFixed(3)),
      disksOverRunc: host ? Number((disks / host).toFixed(1)) : undefined,
      ninePOverRunc: host ? Number((share / host).toFixed(1)) : undefined,
    },
  };
}
