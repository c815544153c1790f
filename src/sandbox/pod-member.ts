import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DescMessage, DescMethodUnary, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import { AgentClient, callMapped, type ProcessInput } from '../agent/client.js';
import { HullError, isHullError } from '../errors.js';
import { PodVm } from '../gen/hull/pod/v1/pod_pb.js';
import { withLock } from '../sys/lock.js';
import { isAlive, parseIdentity } from '../sys/process-identity.js';
import { connectUnix } from '../sys/unix-socket.js';
import { TtrpcClient } from '../ttrpc/client.js';
import { sleep, withTimeout } from '../util/deadline.js';
import type { Bundle } from './bundle.js';
import { removeContainerDir, removeContainerLeftovers } from './container-dir.js';
import type { ContainerVm } from './container-vm.js';
import { HOLDER_FILE, POD_SOCKET, podDir, podSandboxId } from './pod-vm.js';

/** How long a member waits for the pod's lock: another member may be booting the pod's VM. */
const LOCK_WAIT_MS = 300_000;

/**
 * A member monitor's side of its pod's VM: the container is added to the VM the pod's holder
 * owns (pod-vm.ts), started by `startHolder` if no holder answers, and driven through the
 * agent API the holder passes through. Finding or starting the holder and adding the
 * container happen under the pod's lock, which the holder takes before it stops an empty VM.
 */
export async function joinPod(
  options: {
    root: string;
    key: string;
    id: string;
    bundle: Bundle;
    input: ProcessInput;
    /** Starts the pod's holder (`hull _podvm`), which answers on the pod's socket once ready. */
    startHolder: () => Promise<void>;
  },
  signal: AbortSignal,
): Promise<ContainerVm> {
  const dir = podDir(options.root, options.key);
  // The holder removes the directory when it stops: a member that came just then makes it again.
  for (let attempt = 0; ; attempt++) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    let locked = false;
    let refused: { holder: PodConnection; err: unknown } | undefined;
    try {
      const joined = await withLock(dir, withTimeout(signal, LOCK_WAIT_MS), async () => {
        locked = true;
        let holder = await PodConnection.open(dir, signal).catch(() => undefined);
        if (!holder) {
          await removeDeadHolder(dir, options.key);
          await options.startHolder().catch(async (err: unknown) => {
            // No holder came up (it cleaned up after itself): the pod's directory goes too.
            await removeContainerDir(dir);
            throw err;
          });
          holder = await PodConnection.open(dir, signal);
        }
        try {
          await holder.add(options.id, options.bundle, options.input, signal);
        } catch (err) {
          refused = { holder, err };
          return undefined;
        }
        return holder.memberVm(options.id);
      });
      if (joined) return joined;
    } catch (err) {
      if (!locked && isHullError(err, 'ERR_NOT_FOUND') && attempt < 5) continue;
      throw err;
    }
    // Outside the lock, which the holder takes to stop a VM left empty by the refusal: the
    // container was not added, and a VM booted for it alone has stopped once this answers.
    const { holder, err } = refused!;
    await holder.leave(options.id);
    throw err;
  }
}

/**
 * Removes what the pod's last holder left if it died (was killed) rather than stopped: its
 * VM, the VM's cgroup and share mounts. Under the pod's lock; a live holder is left alone.
 */
async function removeDeadHolder(dir: string, key: string): Promise<void> {
  const holder = parseIdentity(await readFile(join(dir, HOLDER_FILE), 'utf8').catch(() => ''));
  if (holder && isAlive(holder)) return;
  await removeContainerLeftovers(join(dir, 'vm'), podSandboxId(key), undefined);
}

/** The connections of one member monitor to its pod's holder: its control API and the agent's. */
class PodConnection {
  private constructor(
    private readonly control: TtrpcClient,
    private readonly agent: AgentClient,
    private readonly holderPid: number,
  ) {}

  static async open(dir: string, signal: AbortSignal): Promise<PodConnection> {
    const path = join(dir, POD_SOCKET);
    const timeout = withTimeout(signal, 10_000);
    const [control, agent] = await Promise.all([connectUnix(path, timeout), connectUnix(path, timeout)]);
    const holder = parseIdentity(await readFile(join(dir, HOLDER_FILE), 'utf8').catch(() => ''));
    return new PodConnection(new TtrpcClient(control), new AgentClient(agent), holder?.pid ?? 0);
  }

  private vmPid = 0;

  async add(id: string, bundle: Bundle, input: ProcessInput, signal: AbortSignal): Promise<void> {
    const added = await this.call(
      PodVm.method.addContainer,
      { id, bundle: bundle.dir, stdin: input.stdin },
      signal,
    );
    this.vmPid = added.vmPid;
  }

  /**
   * Takes a container out (one whose add was refused, or whose monitor is gone), letting the
   * holder stop the VM if nothing is left in it, then lets go.
   */
  async leave(id: string): Promise<void> {
    await this.call(PodVm.method.removeContainer, { id }, AbortSignal.timeout(120_000)).catch(() => {});
    this.close();
  }

  close(): void {
    this.control.close();
    this.agent.close();
  }

  /** The pod's VM as the monitor of member `id` uses it. */
  memberVm(id: string): ContainerVm {
    let releasing: Promise<void> | undefined;
    const waiting = new AbortController();
    // Answers when the VM ends; fails when the holder is gone (or this member let go).
    const ended = this.call(PodVm.method.wait, {}, waiting.signal).then(
      (answer) => answer.lost || `its pod's VM was stopped by its holder (pid ${this.holderPid})`,
      () => `its pod's VM holder (hull _podvm, pid ${this.holderPid}) died`,
    );
    const release = async () => {
      await this.call(PodVm.method.removeContainer, { id }, AbortSignal.timeout(120_000)).catch(() => {});
      waiting.abort();
      this.close();
    };
    return {
      agent: this.agent,
      ended,
      vmPid: this.vmPid,
      updateContainer: async (containerId, resources, signal) => {
        const resourcesJson = Buffer.from(JSON.stringify(resources));
        await this.call(PodVm.method.updateContainer, { id: containerId, resourcesJson }, signal);
      },
      lossReason: async (signal) => {
        if (releasing) return undefined;
        const reason = await Promise.race([
          ended,
          new Promise<undefined>((resolve) => signal.addEventListener('abort', () => resolve(undefined))),
        ]);
        return releasing ? undefined : reason;
      },
      explainFailure: async (err, what) => {
        if (isHullError(err) && err.code !== 'ERR_VM_EXITED') return err;
        const lost = await Promise.race([ended, sleep(3000).then(() => undefined)]);
        return lost && !releasing
          ? new HullError('ERR_VM_EXITED', `the VM of ${what} ended under it: ${lost}`, { cause: err })
          : err;
      },
      shutdown: () => {
        releasing ??= release();
      },
      release: () => {
        releasing ??= release();
        return releasing;
      },
      saveTo: async () => {
        throw new HullError(
          'ERR_UNSUPPORTED',
          "a pod's container cannot be paused to disk: its VM is the pod's, shared with its other containers",
        );
      },
    };
  }

  private call<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    input: MessageInitShape<I>,
    signal: AbortSignal,
  ): Promise<MessageShape<O>> {
    return callMapped(this.control, method, input, signal, 'host');
  }
}

/**
 * After a member's deletion: its container leaves the pod's VM (a member monitor that was
 * killed could not take it out, and the VM stays while any container is in it), and a pod
 * whose holder died (was killed) has its VM, the VM's cgroup and share mounts and the pod's
 * directory removed.
 */
export async function leavePod(root: string, key: string, id: string): Promise<void> {
  const dir = podDir(root, key);
  const holder = await PodConnection.open(dir, AbortSignal.timeout(5000)).catch(() => undefined);
  if (holder) {
    await holder.leave(id);
    return;
  }
  await withLock(dir, AbortSignal.timeout(LOCK_WAIT_MS), async () => {
    const identity = parseIdentity(await readFile(join(dir, HOLDER_FILE), 'utf8').catch(() => ''));
    if (identity && isAlive(identity)) return;
    await removeDeadHolder(dir, key);
    await removeContainerDir(dir);
  }).catch((err: unknown) => {
    if (!isHullError(err, 'ERR_NOT_FOUND')) throw err;
  });
}
