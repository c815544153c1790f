/**
 * The network figure of `npm run bench`: TCP throughput and round-trip time from the host to
 * a container through a port published with podman's `-p 127.0.0.1:PORT:…` (podman's CNI
 * bridge and portmap, as a user gets them), the same busybox container under hull and under
 * runc, side by side. Measurements alternate hull, runc, hull, runc … and the ratio is taken
 * pair by pair, so a machine whose speed drifts still gives a fair ratio.
 *
 * Traffic goes only to 127.0.0.1 and to the two containers the benchmark starts.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { runCommand } from '../e2e/harness.js';
import { busyboxImageArchive, IMAGE } from '../fixtures/oci-image.js';
import { privatePodman } from '../fixtures/podman.js';

/** The size of the file served for the throughput figure, in MiB (it lives in /dev/shm). */
const BLOB_MIB = 32;
/** Round trips per RTT sample; the sample is their median. */
const PINGS = 50;

/** In the container: a file in tmpfs served by httpd, and a TCP echo (`nc -e cat`) on port 7. */
const SERVE = `dd if=/dev/zero of=/dev/shm/blob bs=1M count=${BLOB_MIB} 2>/dev/null; (nc -ll -p 7 -e cat &); exec httpd -f -p 80 -h /dev/shm`;

export interface NetworkFigures {
  rounds: number;
  throughputMiBps: { hull: number; runc: number };
  rttMs: { hull: number; runc: number };
  ratios: { throughputHullOverRunc: number; rttHullOverRunc: number };
}

interface Published {
  http: number;
  echo: number;
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/**
 * Downloads the blob once with curl (a client whose own cost stays far below the transfer);
 * MiB per second over the whole request.
 */
async function throughput(port: number, signal: AbortSignal): Promise<number> {
  const r = await runCommand('curl', [
    '-sS',
    '-f',
    '-m',
    '60',
    '-o',
    '/dev/null',
    '-w',
    '%{size_download} %{speed_download}',
    `http://127.0.0.1:${port}/blob`,
  ]);
  signal.throwIfAborted();
  const [bytes, perSecond] = r.stdout.trim().split(' ').map(Number);
  if (r.code !== 0 || bytes !== BLOB_MIB * 2 ** 20) {
    throw new Error(`GET /blob on port ${port} gave ${bytes} bytes: ${r.stderr.trim()}`);
  }
  return perSecond! / 2 ** 20;
}

/** One byte out, the same byte back, PINGS times over one connection; the median in ms. */
async function roundTrip(port: number, signal: AbortSignal): Promise<number> {
  const socket = await connected(port, signal);
  try {
    socket.setNoDelay(true);
    const samples: number[] = [];
    for (let i = 0; i < PINGS; i++) {
      const started = process.hrtime.bigint();
      socket.write('x');
      await once(socket, 'data', { signal });
      samples.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
    return median(samples);
  } finally {
    socket.destroy();
  }
}

async function connected(port: number, signal: AbortSignal): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  try {
    await once(socket, 'connect', { signal });
    return socket;
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

/**
 * Waits until the echo answers and the blob is served: a container in a freshly booted guest
 * under emulation takes a while to listen.
 */
async function untilServing(ports: Published, signal: AbortSignal): Promise<void> {
  let last: unknown;
  while (!signal.aborted) {
    try {
      await roundTrip(ports.echo, AbortSignal.any([signal, AbortSignal.timeout(5_000)]));
      await throughput(ports.http, AbortSignal.any([signal, AbortSignal.timeout(60_000)]));
      return;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  throw new Error(`the container on ports ${ports.http}/${ports.echo} never served: ${String(last)}`);
}

/**
 * Starts the server container under hull and under runc with podman (its own storage and
 * config under `scratch`, the default CNI bridge on a subnet of its own), measures `rounds`
 * alternating samples of each figure, and removes both containers and the bridge it made.
 */
export async function measureNetwork(scratch: string, rounds: number): Promise<NetworkFigures> {
  const signal = AbortSignal.timeout(20 * 60_000);
  const { podman, bridge } = await privatePodman(join(scratch, 'podman'), { bridgeSubnet: '10.231.40.0/24' });
  const base = 19_000 + (process.pid % 500) * 4;
  const ports: Record<'hull' | 'runc', Published> = {
    hull: { http: base, echo: base + 1 },
    runc: { http: base + 2, echo: base + 3 },
  };
  try {
    const load = await podman('load', '-i', await busyboxImageArchive(join(scratch, 'image')));
    if (load.code !== 0) throw new Error(`podman load: ${load.stderr}`);
    for (const runtime of ['hull', 'runc'] as const) {
      const p = ports[runtime];
      // A later --runtime overrides privatePodman's `--runtime hull`.
      const r = await podman(
        '--runtime',
        runtime,
        'run',
        '-d',
        '--name',
        `bench-net-${runtime}`,
        '-p',
        `127.0.0.1:${p.http}:80`,
        '-p',
        `127.0.0.1:${p.echo}:7`,
        IMAGE,
        'sh',
        '-c',
        SERVE,
      );
      if (r.code !== 0) throw new Error(`podman run --runtime ${runtime}: ${r.stderr}`);
    }
    await untilServing(ports.hull, signal);
    await untilServing(ports.runc, signal);
    const samples = {
      hullTput: [] as number[],
      runcTput: [] as number[],
      hullRtt: [] as number[],
      runcRtt: [] as number[],
    };
    const tputRatios: number[] = [];
    const rttRatios: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const hullTput = await throughput(ports.hull.http, signal);
      const runcTput = await throughput(ports.runc.http, signal);
      const hullRtt = await roundTrip(ports.hull.echo, signal);
      const runcRtt = await roundTrip(ports.runc.echo, signal);
      samples.hullTput.push(hullTput);
      samples.runcTput.push(runcTput);
      samples.hullRtt.push(hullRtt);
      samples.runcRtt.push(runcRtt);
      tputRatios.push(hullTput / runcTput);
      rttRatios.push(hullRtt / runcRtt);
      process.stderr.write('.');
    }
    process.stderr.write('\n');
    return {
      rounds,
      throughputMiBps: { hull: round(median(samples.hullTput), 1), runc: round(median(samples.runcTput), 1) },
      rttMs: { hull: round(median(samples.hullRtt), 3), runc: round(median(samples.runcRtt), 3) },
      ratios: {
        throughputHullOverRunc: round(median(tputRatios), 4),
        rttHullOverRunc: round(median(rttRatios), 1),
      },
    };
  } finally {
    await podman('rm', '-a', '-f', '-t', '1');
    if (bridge) await runCommand('ip', ['link', 'del', bridge]);
  }
}

const round = (x: number, digits: number) => Number(x.toFixed(digits));
