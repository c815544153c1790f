import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import type { Any } from '@bufbuild/protobuf/wkt';
import { HullError } from '../errors.js';

/**
 * The runtime options containerd's CRI plugin sends a shim that is not runc's: its
 * `runtimeoptions.v1.Options{type_url = 1, config_path = 2, config_body = 3}`, filled from the
 * runtime's `options` table (`ConfigPath = "/etc/hull/arm64.toml"`), as Kata's shim reads
 * them. containerd 1.6 sends them with the Create of each task when the task has none.
 */
const RUNTIME_OPTIONS_TYPE = 'runtimeoptions.v1.Options';
const MAX_PATH = 4096;

/** The configuration file the runtime's options name, if they name one. */
export function runtimeConfigPath(options: Any | undefined): string | undefined {
  if (!options || options.typeUrl.replace(/^.*\//, '') !== RUNTIME_OPTIONS_TYPE) return undefined;
  const reader = new BinaryReader(options.value);
  let path: string | undefined;
  try {
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 2 && wireType === WireType.LengthDelimited) path = reader.string();
      else reader.skip(wireType);
    }
  } catch (err) {
    throw new HullError(
      'ERR_CONFIG',
      `the runtime options (${RUNTIME_OPTIONS_TYPE}) are not valid protobuf`,
      {
        cause: err,
      },
    );
  }
  if (!path) return undefined;
  if (!path.startsWith('/') || path.length > MAX_PATH || path.includes('\0')) {
    throw new HullError(
      'ERR_CONFIG',
      `the runtime options' ConfigPath ${JSON.stringify(path.slice(0, 200))} is not an absolute path`,
    );
  }
  return path;
}

/**
 * The type runc's shim reads its Checkpoint options as (`containerd.runc.v1.CheckpointOptions`,
 * field 1 `exit`): `ctr containers checkpoint --task` sends them to every runtime, with exit
 * false; `ctr task checkpoint` sends none to a runtime that is not runc's.
 */
const CHECKPOINT_OPTIONS_TYPE = 'containerd.runc.v1.CheckpointOptions';

/** Whether a Checkpoint's options ask the task to stop once it is checkpointed (runc's `--exit`). */
export function checkpointExits(options: Any | undefined): boolean {
  if (!options || options.typeUrl.replace(/^.*\//, '') !== CHECKPOINT_OPTIONS_TYPE) return false;
  const reader = new BinaryReader(options.value);
  let exit = false;
  try {
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 1 && wireType === WireType.Varint) exit = reader.bool();
      else reader.skip(wireType);
    }
  } catch (err) {
    throw new HullError(
      'ERR_CONFIG',
      `the checkpoint options (${CHECKPOINT_OPTIONS_TYPE}) are not valid protobuf`,
      {
        cause: err,
      },
    );
  }
  return exit;
}
