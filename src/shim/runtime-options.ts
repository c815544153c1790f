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
  const path = fieldOf(options, {
    type: RUNTIME_OPTIONS_TYPE,
    what: 'the runtime options',
    field: 2,
    wireType: WireType.LengthDelimited,
    read: (reader) => reader.string(),
  });
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
  return (
    fieldOf(options, {
      type: CHECKPOINT_OPTIONS_TYPE,
      what: 'the checkpoint options',
      field: 1,
      wireType: WireType.Varint,
      read: (reader) => reader.bool(),
    }) ?? false
  );
}

/**
 * The last value of one field of `options` if they are of `wanted.type` (a protobuf message in
 * an Any, whose other fields are skipped); undefined for other options or none. What the
 * caller sent is checked as protobuf: a message that is not one is refused in one line naming
 * `wanted.what`.
 */
function fieldOf<T>(
  options: Any | undefined,
  wanted: {
    type: string;
    what: string;
    field: number;
    wireType: WireType;
    read: (reader: BinaryReader) => T;
  },
): T | undefined {
  if (!options || options.typeUrl.replace(/^.*\//, '') !== wanted.type) return undefined;
  const reader = new BinaryReader(options.value);
  let value: T | undefined;
  try {
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === wanted.field && wireType === wanted.wireType) value = wanted.read(reader);
      else reader.skip(wireType);
    }
  } catch (err) {
    throw new HullError('ERR_CONFIG', `${wanted.what} (${wanted.type}) are not valid protobuf`, {
      cause: err,
    });
  }
  return value;
}
