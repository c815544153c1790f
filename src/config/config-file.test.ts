import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { isHullError } from '../errors.js';
import { loadConfigFile, parseConfig } from './config-file.js';
import { effectiveSettings, setting, useConfigFile } from './settings.js';

afterEach(() => useConfigFile(undefined));

function refusal(text: string): string {
  try {
    parseConfig(text, '/etc/hull/config.toml');
  } catch (err) {
    assert.ok(isHullError(err, 'ERR_CONFIG'), String(err));
    assert.doesNotMatch(err.message, /\n/, 'one line');
    return err.message;
  }
  assert.fail('the file was accepted');
}

test('a configuration file sets values by key, checked as the variables are', () => {
  const values = parseConfig(
    'root = "/srv/hull"\n[vm]\nvcpus = 2\nmemory_mib = 1024\nboot_timeout = 90\nagent_snapshot = false\n[log]\nlevel = "warn"\n',
    'f.toml',
  );
  assert.deepEqual(Object.fromEntries(values), {
    root: '/srv/hull',
    vcpus: '2',
    memoryMiB: '1024',
    bootTimeoutSeconds: '90',
    agentSnapshot: 'off',
    logLevel: 'warn',
  });
  assert.equal(parseConfig('[vm]\nboot_timeout = "auto"\n', 'f.toml').get('bootTimeoutSeconds'), 'auto');
});

test('an unknown key, a wrong type, a value out of range or bad TOML: one line naming key and file', () => {
  assert.match(
    refusal('[vm]\nacelerator = "tcg"\n'),
    /^\/etc\/hull\/config.toml: unknown key vm.acelerator: known keys are .*vm.accelerator/,
  );
  assert.match(refusal('[vm]\nvcpus = "2"\n'), /config.toml: vm.vcpus must be a whole number/);
  assert.match(refusal('[vm]\nagent_snapshot = "on"\n'), /vm.agent_snapshot must be true or false/);
  assert.match(refusal('[vm]\nmemory_mib = 64\n'), /vm.memory_mib=64 is not valid: give MiB from 128/);
  assert.match(
    refusal('[vm]\naccelerator = "hvf"\n'),
    /vm.accelerator=hvf is not valid: use one of auto, kvm, tcg/,
  );
  assert.match(refusal('[vm\n'), /config.toml is not valid TOML \(line 1/);
  assert.match(refusal('[network]\nmode = "tc"\n'), /unknown key network.mode/);
});

test('the environment wins over the file, the file over the default; hull env says which', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hull-config-'));
  const file = join(dir, 'config.toml');
  writeFileSync(file, '[vm]\nvcpus = 3\ncpu_model = "EPYC"\n');
  loadConfigFile(file, {});
  const env = { HULL_CPU_MODEL: 'qemu64' };
  assert.equal(setting('vcpus', env), '3');
  assert.equal(setting('cpuModel', env), 'qemu64');
  assert.equal(setting('accel', env), 'auto');
  const sources = Object.fromEntries(effectiveSettings(env).map((s) => [s.name, s.source]));
  assert.deepEqual([sources.vcpus, sources.cpuModel, sources.accel], ['file', 'environment', 'default']);
  rmSync(dir, { recursive: true });
});

test('no file at the default path is fine; a named file that is missing is an error', () => {
  loadConfigFile(undefined, { HULL_CONFIG: '' });
  assert.throws(
    () => loadConfigFile('/nonexistent/hull.toml', {}),
    /the configuration file \/nonexistent\/hull.toml does not exist/,
  );
  assert.throws(
    () => loadConfigFile(undefined, { HULL_CONFIG: '/nonexistent/x.toml' }),
    /x.toml does not exist/,
  );
});
