import { rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { HullError, messageOf } from '../errors.js';
import { AgentService } from '../gen/hull/agent/v1/agent_pb.js';
import { PodVm as PodVmService } from '../gen/hull/pod/v1/pod_pb.js';
import type { Arch } from '../hypervisor/arch.js';
import { logger } from '../log.js';
import { configuredNetns } from '../network/namespace.js';
import { vcpusCovering } from '../oci/guest-resources.js';
import { POD_PINNED_NAMESPACES } from '../oci/pod-namespaces.js';
import type { Spec } from '../oci/spec.js';
import { withLock } from '../sys/lock.js';
import { TrimWhenIdle } from '../sys/malloc-trim.js';
import { formatIdentity, identityOf } from '../sys/process-identity.js';
import { listenPrivately } from '../sys/unix-socket.js';
import { TtrpcServer } from '../ttrpc/server.js';
import { type Bundle, loadBundle } from './bundle.js';
import { containerArch } from './container-arch.js';
import { defaultVcpus, type RuntimeSettings, startSandbox } from './runtime.js';
import type { Sandbox } from './sandbox.js';
import { toWireStatus } from './wire-status.js';

/** The holder's socket in its pod's directory: hull.pod.v1.PodVm, and the agent API passed through. */
export const POD_SOCKET = 'pod.sock';
/** The holder's identity (pid and start time), for a member to name it once it is gone. */
export const HOLDER_FILE = 'holder';

/** How long the holder waits for the pod's lock before it stops its VM. */
const LOCK_WAIT_MS = 300_000;

/** The directory of pod `key` under a runtime root; `:` is in no container ID, so none collides. */
export function podDir(root: string, key: string): string {
  return join(root, `pod:${key.replace(':', '-')}`);
}

/** The ID of pod `key`'s sandbox (its VM, its host cgroup). */
export function podSandboxId(key: string): string {
  return `pod-${key.replace(':', '-')}`;
}

/**
 * The holder of a pod's VM under the OCI command: the one host process that owns the VM the
 * containers of one pod share (CRI-O runtime_type "oci", podman pods). conmon waits on each
 * container's own monitor, and any container (the first too) may end and be deleted while the
 * others run, so no container's monitor can own the VM: this process does, and each member
 * monitor adds its container here and removes it when the container ends. The last removal
 * stops the VM, removes the pod's directory and ends this process.
 *
 * In the guest the pod's IPC and UTS namespaces are the VM's own: a member's pinned (or
 * podman's /proc/<pid>/ns) IPC and UTS entries are dropped, so every member shares them
 * however many containers come and go; the VM is the pod's, and its hostname the pod's.
 */
export class PodVm {
  private readonly members = new Set<string>();
  private server: Server | undefined;
  private stopping: Promise<void> | undefined;
  private lost: string | undefined;
  private readonly ended: Promise<void>;
  private readonly log = logger('pod');
  /** Gives back at once what a connection cut with an unfinished request held. */
  private readonly trimmer = new TrimWhenIdle();
  /** Settles once the VM is stopped and the pod's directory is gone. */
  readonly done: Promise<void>;
  private finish: () => void = () => {};

  private constructor(
    readonly key: string,
    readonly dir: string,
    private readonly sandbox: Sandbox,
    private readonly arch: Arch,
  ) {
    this.done = new Promise((resolve) => {
      this.finish = resolve;
    });
    this.ended = sandbox.vm.exited.then(async () => {
      if (this.stopping) return;
      // The VM ended by itself: the members' Wait answers say why; they then remove their
      // containers, and the last removal ends this process.
      this.lost =
        (await sandbox.lossReason(AbortSignal.timeout(5000)).catch(() => undefined)) ?? 'the VM ended';
      this.log.error({ reason: this.lost }, "the pod's VM ended under its containers");
      await sandbox.destroy().catch(() => {});
    });
  }

  /** Boots the pod's VM, sized and networked by the configuration of its first container. */
  static async start(
    options: { key: string; settings: RuntimeSettings; bundle: Bundle },
    signal: AbortSignal,
  ): Promise<PodVm> {
    const dir = podDir(options.settings.root, options.key);
    const { spec } = options.bundle;
    const vcpus = vcpusCovering(spec.linux?.resources, options.settings.vcpus ?? defaultVcpus());
    // The architecture of its first container (a podman container on a network is a pod of one).
    const arch = await containerArch(options.bundle);
    const sandbox = await startSandbox(
      podSandboxId(options.key),
      { ...options.settings, vcpus },
      {
        dir: join(dir, 'vm'),
        hostname: spec.hostname,
        netns: configuredNetns(spec),
        // The pod's own host cgroup, not its first container's, which may be deleted first.
        spec: { linux: { resources: spec.linux?.resources } },
        arch,
        signal,
      },
    );
    const pod = new PodVm(options.key, dir, sandbox, arch);
    try {
      await writeFile(
        join(dir, HOLDER_FILE),
        formatIdentity(identityOf(process.pid) ?? { pid: process.pid }),
        {
          mode: 0o600,
        },
      );
      await pod.serve();
    } catch (err) {
      await sandbox.destroy();
      throw err;
    }
    return pod;
  }

  /** Stops the VM now, whatever its members (the holder was told to stop). */
  async stop(): Promise<void> {
    this.stopping ??= this.teardown();
    await this.stopping;
  }

  private async serve(): Promise<void> {
    const rpc = new TtrpcServer(toWireStatus)
      .register(PodVmService, {
        addContainer: async (req, ctx) => {
          await this.add(req.id, req.bundle, req.stdin, ctx.signal);
          return { vmPid: this.sandbox.vm.pid };
        },
        removeContainer: async (req) => {
          await this.remove(req.id);
          return {};
        },
        updateContainer: async (req, ctx) => {
          this.requireMember(req.id);
          const resources: unknown = JSON.parse(Buffer.from(req.resourcesJson).toString('utf8'));
          await this.sandbox.updateContainer(req.id, resources, ctx.signal);
          return {};
        },
        wait: async (_req, ctx) => {
          await Promise.race([
            this.ended,
            new Promise((_, reject) => ctx.signal.addEventListener('abort', reject, { once: true })),
          ]);
          return { lost: this.lost ?? '' };
        },
      })
      .forward(AgentService.typeName, (method, payload, signal) =>
        this.sandbox.agent.forwardRaw(method, payload, signal),
      )
      .whenUnfinishedFramesDropped(() => this.trimmer.soon());
    this.server = createServer((socket) => {
      socket.on('error', () => {});
      rpc.serve(socket);
    });
    await listenPrivately(this.server, join(this.dir, POD_SOCKET));
  }

  private async add(id: string, bundleDir: string, stdin: boolean, signal: AbortSignal): Promise<void> {
    if (this.stopping || this.lost) {
      throw new HullError(
        'ERR_VM_EXITED',
        `the VM of pod ${this.key} has stopped${this.lost ? `: ${this.lost}` : ''}`,
      );
    }
    if (this.members.has(id))
      throw new HullError('ERR_EXISTS', `container ${id} is already in pod ${this.key}`);
    this.members.add(id);
    try {
      const bundle = await loadBundle(bundleDir);
      const arch = await containerArch(bundle);
      if (arch !== this.arch) {
        throw new HullError(
          'ERR_UNSUPPORTED',
          `container ${id} is ${arch} and the VM of pod ${this.key} is ${this.arch}: the containers of a pod share one VM, of one architecture`,
        );
      }
      await this.sandbox.createContainer(id, { ...bundle, spec: withPodNamespaces(bundle.spec) }, signal, {
        stdin,
      });
    } catch (err) {
      // Its member, which holds the pod's lock while it adds, then asks for the removal of
      // the container it could not add: an empty VM stops then.
      this.members.delete(id);
      throw err;
    }
  }

  private async remove(id: string): Promise<void> {
    if (!this.members.has(id)) {
      await this.stopIfEmpty();
      return;
    }
    if (!this.lost && !this.stopping) {
      await this.sandbox
        .removeContainer(id, AbortSignal.timeout(60_000))
        .catch((err: unknown) =>
          this.log.warn({ id, err: messageOf(err) }, 'removing the container from the guest'),
        );
    }
    this.members.delete(id);
    this.log.debug({ id, members: this.members.size }, 'container removed');
    await this.stopIfEmpty();
  }

  /**
   * Stops the VM once no container is left in it, under the pod's lock, which a member holds
   * from finding this holder to having added its container: no container is added to a VM
   * that is stopping.
   */
  private async stopIfEmpty(): Promise<void> {
    if (this.members.size > 0 || this.stopping) return;
    await withLock(this.dir, AbortSignal.timeout(LOCK_WAIT_MS), async () => {
      if (this.members.size === 0) await this.stop();
    }).catch((err: unknown) => this.log.error({ err: messageOf(err) }, 'stopping the empty pod'));
  }

  private async teardown(): Promise<void> {
    this.server?.close();
    await this.sandbox.destroy().catch((err: unknown) => this.log.error({ err: messageOf(err) }, 'teardown'));
    await rm(this.dir, { recursive: true, force: true });
    this.finish();
  }

  private requireMember(id: string): void {
    if (!this.members.has(id))
      throw new HullError('ERR_NOT_FOUND', `container ${id} is not in pod ${this.key}`);
  }
}

/**
 * A member's configuration as the guest gets it: its IPC and UTS entries that name the pod's
 * namespaces (pinned by CRI-O, or podman's /proc/<pid>/ns paths) are dropped, so the
 * container shares the VM's own, which outlive every container of the pod.
 */
export function withPodNamespaces(spec: Spec): Spec {
  const namespaces = spec.linux?.namespaces;
  if (!namespaces) return spec;
  return {
    ...spec,
    linux: {
      ...spec.linux,
      namespaces: namespaces.filter((ns) => !(ns.path && POD_PINNED_NAMESPACES.has(ns.type))),
    },
  };
}
