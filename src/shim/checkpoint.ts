import type { Bundle } from '../sandbox/bundle.js';
import { ownVm } from '../sandbox/container-vm.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import {
  type CheckpointRecord,
  completeCheckpoint,
  placeCheckpointDisks,
  requireCheckpointRoom,
  restorableCheckpoint,
} from '../snapshot/checkpoint-dir.js';
import { snapshotDiskPath } from '../snapshot/saved-vm.js';
import type { RootfsDisks } from '../storage/rootfs-disks.js';

/**
 * containerd's checkpoint of a task whose root is on disks (`ctr run --annotation
 * dev.hull.rootfs=disk`), and its restore: the same checkpoint directory as `hull checkpoint`
 * writes for podman (snapshot/checkpoint-dir.ts), made by the shim, which owns the VM.
 *
 * containerd gives Checkpoint an empty directory of its own (a runtime other than runc's gets
 * no image path), tars it into its content store as the checkpoint image's
 * `application/vnd.containerd.container.criu.checkpoint.criu.tar` layer and removes it; a
 * restore (`ctr containers restore --live`) unpacks that layer into a new directory and passes
 * it to Create as `checkpoint`, then calls Start. As for runc, the task runs on after its
 * checkpoint unless the options say `exit`: the VM is snapshotted (saved and resumed, its
 * writable disk copied while it is stopped). The container is frozen while its VM is saved —
 * containerd has paused it already for `ctr task checkpoint` and `ctr containers checkpoint` —
 * so the restored guest holds it frozen, and the restored task's Start thaws it.
 */

/** Saves the VM of a running task into `dir` and completes the checkpoint there. */
export async function saveTaskCheckpoint(
  task: { id: string; sandbox: Sandbox; disks: RootfsDisks; paused: boolean },
  dir: string,
  signal: AbortSignal,
): Promise<CheckpointRecord> {
  await requireCheckpointRoom(dir, task.disks, { frozenCopy: true });
  const agent = task.sandbox.agent;
  if (!task.paused) await agent.pauseContainer(task.id, signal);
  try {
    await ownVm(task.sandbox).saveTo(dir, signal, { resume: true });
  } finally {
    // A task containerd paused stays paused: containerd resumes it after the checkpoint.
    if (!task.paused) await agent.resumeContainer(task.id, signal);
  }
  return completeCheckpoint(dir, task.id, { ...task.disks, writable: snapshotDiskPath(dir) }, signal, {
    imageStays: true,
    frozen: true,
  });
}

/**
 * Checks the checkpoint containerd unpacked in `dir` and puts its disks in the shim's
 * directory `podDir`, where the task's VM finds them (storage/bundle-disks.ts); the checkpoint
 * stays as it is. The caller then resumes the VM from `dir` (startSandbox's resumeFrom).
 */
export async function placeTaskCheckpoint(
  id: string,
  bundle: Bundle,
  dir: string,
  podDir: string,
  signal: AbortSignal,
): Promise<CheckpointRecord> {
  const record = await restorableCheckpoint(dir, id, bundle.spec.annotations);
  await placeCheckpointDisks(dir, record, podDir, signal);
  return record;
}
