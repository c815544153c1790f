import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkSettings } from '../config/settings.js';
import { isHullError } from '../errors.js';
import { checkCpuModel } from '../sandbox/runtime.js';
import { parseCpuPropertyHelp, parseCpuSpec } from './cpu-model.js';
import { qemuCommandLine } from './qemu/command-line.js';

test('a CPU model takes QEMU CPU options: max,pauth=off and max,pauth-impdef=on', () => {
  assert.deepEqual(parseCpuSpec('cortex-a72'), { model: 'cortex-a72', options: [] });
  assert.deepEqual(parseCpuSpec('max,pauth=off'), {
    model: 'max',
    options: [{ name: 'pauth', value: 'off' }],
  });
  assert.deepEqual(parseCpuSpec('max,pauth-impdef=on,sve=off'), {
    model: 'max',
    options: [
      { name: 'pauth-impdef', value: 'on' },
      { name: 'sve', value: 'off' },
    ],
  });
  assert.deepEqual(parseCpuSpec('Icelake-Server-v1,vmx=off'), {
    model: 'Icelake-Server-v1',
    options: [{ name: 'vmx', value: 'off' }],
  });
});

test('anything else in a CPU model is refused: no bare flags, no help, no second switch, no quoting', () => {
  for (const [text, reason] of [
    ['', /is not a CPU model name/],
    ['max,', /"" is not a CPU option/],
    ['max,pauth', /"pauth" is not a CPU option of the form name=value/],
    ['max,help', /"help" is not a CPU option/],
    ['max,+avx', /"\+avx" is not a CPU option/],
    ['max,pauth=off,pauth=on', /pauth is given twice/],
    ['max,pauth=o n', /"pauth=o n"/],
    ['max,pauth="off"', /is not a CPU option/],
    ['max,x=a=b', /is not a CPU option/],
    ['max -device foo', /is not a CPU model name/],
    ['max,pauth=off -sandbox off', /is not a CPU option/],
    [`max${',a=b'.repeat(17)}`, /more than 16 CPU options/],
  ] as const) {
    const spec = parseCpuSpec(text);
    assert.ok('error' in spec, `${JSON.stringify(text)} is refused`);
    assert.match(spec.error, reason);
  }
});

test('vm.cpu_model and HULL_CPU_MODEL take options, and refuse bad ones in one line', () => {
  checkSettings({ HULL_CPU_MODEL: 'max,pauth=off' });
  checkSettings({ HULL_CPU_MODEL: 'max,pauth-impdef=on' });
  assert.throws(
    () => checkSettings({ HULL_CPU_MODEL: 'max,pauth' }),
    (err: unknown) =>
      isHullError(err, 'ERR_CONFIG') &&
      /^HULL_CPU_MODEL="max,pauth" is not valid: "pauth" is not a CPU option of the form name=value; use MODEL\[,NAME=VALUE\.\.\.\]/.test(
        err.message,
      ) &&
      !err.message.includes('\n'),
  );
});

test('the options go to QEMU as one -cpu argument', () => {
  const args = qemuCommandLine(
    {
      id: 'a',
      arch: 'arm64',
      runDir: '/run/hull/a',
      kernel: '/k',
      initrd: '/i',
      rootfs: '/r',
      shareDir: '/s',
      vcpus: 1,
      memoryMiB: 512,
      accel: 'tcg',
      cpuModel: 'max,pauth=off',
      deviceDiscovery: 'cmdline',
    },
    { agentSocket: '/a', qmpSocket: '/q', consoleLog: '/c' },
  );
  const i = args.indexOf('-cpu');
  assert.equal(args[i + 1], 'max,pauth=off');
});

/** A hypervisor that offers the models and options qemu-system-aarch64 7.2 lists (some of them). */
const aarch64 = {
  cpuModels: async () => ['cortex-a72', 'cortex-a76', 'max', 'host'],
  cpuModelOptions: async (model: string) =>
    model === 'max' ? ['pauth', 'pauth-impdef', 'sve', 'aarch64'] : [],
};

test("a configured CPU is checked against QEMU's models and that model's options", async () => {
  await checkCpuModel('max,pauth=off', aarch64, 'arm64');
  await checkCpuModel('max,pauth-impdef=on', aarch64, 'arm64');
  await checkCpuModel('cortex-a72', aarch64, 'arm64');
  await assert.rejects(
    checkCpuModel('cortex-a99', aarch64, 'arm64'),
    /^HullError: HULL_CPU_MODEL=cortex-a99: QEMU has no such CPU model; `qemu-system-aarch64 -cpu help` lists them$/,
  );
  await assert.rejects(
    checkCpuModel('max,pauth=off,frobnicate=on', aarch64, 'arm64'),
    (err: unknown) =>
      isHullError(err, 'ERR_CONFIG') &&
      err.message ===
        'HULL_CPU_MODEL=max,pauth=off,frobnicate=on: CPU model max has no option frobnicate; `qemu-system-aarch64 -device max-arm-cpu,help` lists them',
  );
});

test("a CPU model's options are read from QEMU's -device TYPE,help", () => {
  const help = [
    'max-arm-cpu options:',
    '  aarch64=<bool>         - Set on/off to enable/disable aarch64 execution state ',
    '  memory=<link<memory-region>>',
    '  pauth-impdef=<bool>    -  (default: false)',
    '  pauth=<bool>           -  (default: true)',
    '  sve-max-vq=<uint32>',
  ].join('\n');
  assert.deepEqual(parseCpuPropertyHelp(help), ['aarch64', 'memory', 'pauth-impdef', 'pauth', 'sve-max-vq']);
});
