import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../../src/sys/exec.js';
import { makeBusyboxBundle } from '../fixtures/bundle.js';
import { assertNothingLeft, hull, privateDirs, privateImageState } from './harness.js';

/**
 * hull on hosts whose CPU differs from the one the image was built on. A guest CPU model other
 * than the default stands for another host: the agent's startup snapshot must be made for it
 * (in a guest of that model) and used, and a snapshot the guest refuses must cost a notice,
 * never the container. Each test has a private state directory, so snapshots are made afresh.
 */
describe('hull on any x86-64 host: guest CPU models and the agent snapshot', { timeout: 900_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let bundle: string;
  let n = 0;
  before(async () => {
    dirs = await privateDirs('portable');
    bundle = join(dirs.scratch, 'bundle');
    await mkdir(bundle);
    await makeBusyboxBundle(bundle, ['sh', '-c', 'grep -m1 "model name" /proc/cpuinfo; echo done']);
  });
  after(() => dirs.cleanup());

  /** `hull run` of the bundle with a debug log, and how the agent started according to it. */
  async function runLogged(env: NodeJS.ProcessEnv) {
    n += 1;
    const log = join(dirs.scratch, `run-${n}.log`);
    const r = await hull(
      ['--root', dirs.root, '--debug', '--log', log, '--log-format', 'json', 'run', '-b', bundle, `p${n}`],
      { env },
    );
    const ready = (await readFile(log, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, string>)
      .find((l) => l.msg === 'agent ready');
    await assertNothingLeft(dirs.root);
    // A fresh state directory decides the accelerator afresh, and says so if it is TCG.
    const notices = r.stderr
      .split('\n')
      .filter((l) => l && !/^hull: notice: using TCG software emulation/.test(l));
    return { ...r, notices, agentSnapshot: ready?.snapshot };
  }

  async function envOf(env: NodeJS.ProcessEnv) {
    const r = await hull(['env', '--output', 'json'], { env });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as {
      vm: { cpuModel: string; agentSnapshot: string };
      settings: { env: string; value: string; source: string }[];
    };
  }

  for (const [model, cpuName] of [
    ['qemu64', /QEMU Virtual CPU/],
    ['Icelake-Server', /Icelake/],
    ['EPYC', /AMD EPYC/],
  ] as const) {
    test(`a container runs under the ${model} CPU model, its agent from a snapshot made for it`, async () => {
      const { state } = await privateImageState(join(dirs.scratch, `state-${model}`));
      const env = { HULL_STATE_DIR: state, HULL_CPU_MODEL: model };
      const first = await runLogged(env);
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, cpuName, 'the guest sees the configured CPU');
      assert.match(first.stdout, /done/);
      assert.deepEqual(first.notices, [], 'no notice: the snapshot was made for this CPU and accepted');
      assert.equal(first.agentSnapshot, 'used');
      const { vm } = await envOf(env);
      assert.equal(vm.cpuModel, model);
      assert.ok(
        (await readFile(vm.agentSnapshot)).length > 0,
        'the snapshot disk is kept for the next start',
      );
    });
  }

  test('a snapshot made for another CPU is refused by the guest: one notice, the container runs', async () => {
    const { state } = await privateImageState(join(dirs.scratch, 'state-foreign'));
    // A snapshot made in a qemu64 guest, put where the default CPU model's belongs.
    const qemu64 = (await envOf({ HULL_STATE_DIR: state, HULL_CPU_MODEL: 'qemu64' })).vm.agentSnapshot;
    const made = await runLogged({ HULL_STATE_DIR: state, HULL_CPU_MODEL: 'qemu64' });
    assert.equal(made.code, 0, made.stderr);
    const slot = (await envOf({ HULL_STATE_DIR: state })).vm.agentSnapshot;
    assert.notEqual(slot, qemu64, 'each CPU model has its own snapshot');
    await copyFile(qemu64, slot);

    const refused = await runLogged({ HULL_STATE_DIR: state });
    assert.equal(refused.code, 0, refused.stderr);
    assert.match(refused.stdout, /done/);
    assert.equal(refused.agentSnapshot, 'rejected');
    const lines = refused.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line: ${refused.stderr}`);
    assert.match(
      lines[0]!,
      /^hull: notice: the guest refused the agent's startup snapshot for CPU model max/,
    );

    // The refused snapshot is made again, for this CPU, at the next start.
    const again = await runLogged({ HULL_STATE_DIR: state });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(again.notices, []);
    assert.equal(again.agentSnapshot, 'used');
  });

  test('a corrupt snapshot (V8 aborts on it) is refused the same way', async () => {
    const { state } = await privateImageState(join(dirs.scratch, 'state-corrupt'));
    const slot = (await envOf({ HULL_STATE_DIR: state })).vm.agentSnapshot;
    const content = join(dirs.scratch, 'corrupt');
    await mkdir(content);
    await writeFile(join(content, 'agent.blob'), Buffer.alloc(1 << 20, 0x5a));
    await mkdir(join(slot, '..'), { recursive: true });
    await run('mkfs.erofs', ['--quiet', slot, content]);
    const r = await runLogged({ HULL_STATE_DIR: state });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /done/);
    assert.equal(r.agentSnapshot, 'rejected');
    assert.equal(r.notices.length, 1, r.stderr);
    assert.match(r.notices[0]!, /^hull: notice: the guest refused the agent's startup snapshot/);
    await rm(content, { recursive: true });
  });

  test('with HULL_AGENT_SNAPSHOT=off the agent starts from its script', async () => {
    const r = await runLogged({ HULL_AGENT_SNAPSHOT: 'off' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.agentSnapshot, 'none');
  });

  test('an unknown CPU model is one line naming the setting, before any VM starts', async () => {
    const r = await hull(['--root', dirs.root, 'run', '-b', bundle, 'bad-cpu'], {
      env: { HULL_CPU_MODEL: 'Pentium-9000' },
    });
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^hull: HULL_CPU_MODEL=Pentium-9000: QEMU has no such CPU model/);
    await assertNothingLeft(dirs.root);
  });
});

describe('hull check and hull env', { timeout: 600_000 }, () => {
  test('hull check: one line per requirement; a real boot; TCG explained on a kvm_pvm host', async () => {
    const r = await hull(['check', '--output', 'json']);
    const report = JSON.parse(r.stdout) as {
      ok: boolean;
      checks: { name: string; status: string; detail: string }[];
    };
    const check = (name: string) => report.checks.find((c) => c.name === name)!;
    assert.equal(r.code, report.ok ? 0 : 1);
    for (const name of ['qemu', 'guest image', 'guest CPU model', 'agent boot', 'image tools', 'memory'])
      assert.equal(check(name).status, 'ok', `${name}: ${check(name).detail}`);
    assert.match(check('qemu').detail, /QEMU emulator version/);
    assert.match(check('agent boot').detail, /answered in [\d.]+ s, from its startup snapshot/);
    const pvmOnly =
      existsSync('/sys/module/kvm_pvm') &&
      !existsSync('/sys/module/kvm_intel') &&
      !existsSync('/sys/module/kvm_amd');
    if (pvmOnly) {
      assert.equal(check('accelerator').status, 'warn');
      assert.match(check('accelerator').detail, /TCG .*only kvm_pvm/);
    }
    for (const client of ['podman', 'docker', 'containerd']) assert.ok(check(client), client);

    const text = await hull(['check']);
    const lines = text.stdout.trim().split('\n');
    assert.equal(lines.length, report.checks.length, 'the text form has one line per check');
    for (const line of lines) assert.match(line, /^(ok|warn|fail) +[A-Za-z][\w -]*: \S/);
  });

  test('hull check fails, saying what to do, when there is no guest image', async () => {
    const dirs = await privateDirs('check-empty');
    try {
      const r = await hull(['check'], { env: { HULL_STATE_DIR: dirs.scratch } });
      assert.equal(r.code, 1);
      assert.match(r.stdout, /^fail +guest image: no guest image in .*: run `hull image build` first$/m);
      assert.match(r.stdout, /^fail +agent boot: .*run `hull image build`/m);
    } finally {
      await dirs.cleanup();
    }
  });

  test('hull env prints versions and each setting with where it came from', async () => {
    const r = await hull(['env'], { env: { HULL_CPU_MODEL: 'qemu64' } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^qemu: +QEMU emulator version/m);
    assert.match(r.stdout, /^guest kernel: +\S+/m);
    assert.match(r.stdout, /^guest CPU model: +qemu64$/m);
    assert.match(r.stdout, /^ {2}HULL_CPU_MODEL=qemu64 \(environment; vm.cpu_model in the file\)/m);
    assert.match(r.stdout, /^ {2}HULL_ACCEL=\S+ \((default|environment); vm.accelerator in the file\)/m);
  });
});
