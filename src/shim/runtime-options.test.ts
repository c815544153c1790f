import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { isHullError } from '../errors.js';
import { checkpointExits, runtimeConfigPath } from './runtime-options.js';

/** runtimeoptions.v1.Options as containerd's CRI plugin marshals it. */
function options(fields: { typeUrl?: string; configPath?: string }) {
  const w = new BinaryWriter();
  if (fields.typeUrl) w.uint32((1 << 3) | 2).string(fields.typeUrl);
  if (fields.configPath) w.uint32((2 << 3) | 2).string(fields.configPath);
  return {
    $typeName: 'google.protobuf.Any' as const,
    typeUrl: 'runtimeoptions.v1.Options',
    value: w.finish(),
  };
}

test("a RuntimeClass handler's ConfigPath reaches the shim as Kata's runtime options", () => {
  assert.equal(runtimeConfigPath(options({ configPath: '/etc/hull/arm64.toml' })), '/etc/hull/arm64.toml');
  assert.equal(
    runtimeConfigPath(options({ typeUrl: 'x', configPath: '/etc/hull/a.toml' })),
    '/etc/hull/a.toml',
  );
  assert.equal(runtimeConfigPath(options({})), undefined, 'options without a ConfigPath');
  assert.equal(runtimeConfigPath(undefined), undefined);
  assert.equal(
    runtimeConfigPath({ ...options({ configPath: '/x' }), typeUrl: 'containerd.runc.v1.Options' }),
    undefined,
    "runc's options are not hull's",
  );
});

test('a relative or malformed ConfigPath is refused in one line', () => {
  assert.throws(
    () => runtimeConfigPath(options({ configPath: 'arm64.toml' })),
    (err: unknown) => isHullError(err, 'ERR_CONFIG') && /is not an absolute path/.test(err.message),
  );
  assert.throws(
    () => runtimeConfigPath({ ...options({}), value: new Uint8Array([0x12, 0x7f]) }),
    (err: unknown) => isHullError(err, 'ERR_CONFIG') && /not valid protobuf/.test(err.message),
  );
});

test("runc's checkpoint options say whether the task stops after its checkpoint (ctr --exit)", () => {
  const checkpointOptions = (exit: boolean) => ({
    $typeName: 'google.protobuf.Any' as const,
    typeUrl: 'containerd.runc.v1.CheckpointOptions',
    // exit = 1, file_locks = 5 (what `ctr containers checkpoint --task` sets), image_path = 8.
    value: new BinaryWriter()
      .uint32(1 << 3)
      .bool(exit)
      .uint32(5 << 3)
      .bool(true)
      .uint32((8 << 3) | 2)
      .string('/x')
      .finish(),
  });
  assert.equal(checkpointExits(checkpointOptions(true)), true);
  assert.equal(checkpointExits(checkpointOptions(false)), false);
  assert.equal(checkpointExits(undefined), false, '`ctr task checkpoint` sends no options to hull');
  assert.equal(checkpointExits({ ...checkpointOptions(true), typeUrl: 'other.Options' }), false);
});
