import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import { checkSpec, VM_NAMESPACES_ANNOTATION } from './checks.js';
import { defaultSpec } from './default-spec.js';
import type { Spec } from './spec.js';

function spec(edit: (s: Spec) => void): Spec {
  const s = defaultSpec(['true'], { terminal: false });
  edit(s);
  return s;
}

function refusal(s: Spec): string {
  try {
    checkSpec(s, 'config.json');
  } catch (err) {
    assert.ok(isHullError(err), String(err));
    assert.doesNotMatch(err.message, /\n/, 'one line');
    return err.message;
  }
  assert.fail('the configuration was accepted');
}

const without = (type: string) => (s: Spec) => {
  s.linux!.namespaces = s.linux!.namespaces!.filter((ns) => ns.type !== type);
};

test('the default configuration passes', () => {
  checkSpec(
    spec(() => {}),
    'config.json',
  );
});

for (const [type, field] of [
  ['network', 'hostNetwork'],
  ['pid', 'hostPID'],
  ['ipc', 'hostIPC'],
]) {
  test(`no ${type} namespace (${field}) is refused, naming the field and the way out`, () => {
    const message = refusal(spec(without(type!)));
    assert.match(message, new RegExp(`no "${type}" entry`));
    assert.match(message, new RegExp(field!));
    assert.match(message, new RegExp(VM_NAMESPACES_ANNOTATION));
  });
}

test("the annotation accepts the VM's namespace in place of the host's", () => {
  checkSpec(
    spec((s) => {
      without('pid')(s);
      without('ipc')(s);
      s.annotations = { [VM_NAMESPACES_ANNOTATION]: 'pid, ipc' };
    }),
    'config.json',
  );
  assert.match(
    refusal(
      spec((s) => {
        without('network')(s);
        s.annotations = { [VM_NAMESPACES_ANNOTATION]: 'pid' };
      }),
    ),
    /"network"/,
  );
});

test('no UTS namespace is kept: the VM takes the configured hostname', () => {
  checkSpec(spec(without('uts')), 'config.json');
});

test('an unknown or repeated namespace type is refused', () => {
  assert.match(
    refusal(spec((s) => s.linux!.namespaces!.push({ type: 'netwrk' }))),
    /linux.namespaces\[5\].type "netwrk"/,
  );
  assert.match(refusal(spec((s) => s.linux!.namespaces!.push({ type: 'pid' }))), /"pid" twice/);
});

test('an unknown capability is refused, naming the set and the name', () => {
  const message = refusal(
    spec((s) => {
      s.process!.capabilities = { bounding: ['CAP_CHOWN'], effective: ['CAP_CHOWN', 'CAP_FLY'] };
    }),
  );
  assert.match(message, /process.capabilities.effective/);
  assert.match(message, /"CAP_FLY"/);
  checkSpec(
    spec((s) => {
      s.process!.capabilities = { bounding: ['CAP_CHECKPOINT_RESTORE', 'CAP_BPF', 'CAP_NET_ADMIN'] };
    }),
    'config.json',
  );
});

test('shared propagation is refused; slave and private are kept', () => {
  assert.match(
    refusal(
      spec((s) => {
        s.mounts!.push({ destination: '/data', type: 'bind', source: '/tmp', options: ['rbind', 'rshared'] });
      }),
    ),
    /mounts\[\d+\] \(\/data\) has "rshared" propagation/,
  );
  assert.match(
    refusal(
      spec((s) => {
        s.linux!.rootfsPropagation = 'shared';
      }),
    ),
    /linux.rootfsPropagation "shared"/,
  );
  checkSpec(
    spec((s) => {
      s.mounts!.push({ destination: '/data', type: 'bind', source: '/tmp', options: ['rbind', 'rslave'] });
      s.linux!.rootfsPropagation = 'rslave';
    }),
    'config.json',
  );
});
