import { HullError } from '../errors.js';

/**
 * hull's settings: one table of every knob, each with its environment variable, its default
 * and its check, so that `hull env` can print the effective value and where it came from, and
 * a bad value is one line naming the variable. (Flags override these where a verb has one.)
 */
export type SettingName = 'root' | 'stateDir' | 'accel' | 'cpuModel' | 'bootTimeoutSeconds' | 'agentSnapshot';

interface SettingSpec {
  env: string;
  description: string;
  /** The default as shown; `undefined` values mean "decided at run time" (described). */
  defaultValue: string;
  /** Returns the value as hull uses it, or throws a one-line HullError. */
  check(raw: string, env: string): string;
}

const oneOf =
  (...allowed: string[]) =>
  (raw: string, env: string) => {
    if (!allowed.includes(raw))
      throw new HullError('ERR_CONFIG', `${env}=${raw} is not valid: use one of ${allowed.join(', ')}`);
    return raw;
  };

const SETTINGS: Record<SettingName, SettingSpec> = {
  root: {
    env: 'HULL_ROOT',
    description: 'runtime root: one directory per sandbox (when --root is not given)',
    defaultValue: '/run/hull',
    check: (raw) => raw,
  },
  stateDir: {
    env: 'HULL_STATE_DIR',
    description: 'where guest images, snapshots and probes are cached',
    defaultValue: '/var/lib/hull',
    check: (raw) => raw,
  },
  accel: {
    env: 'HULL_ACCEL',
    description: 'accelerator: auto (KVM where it really works, else TCG), kvm or tcg',
    defaultValue: 'auto',
    check: oneOf('auto', 'kvm', 'tcg'),
  },
  cpuModel: {
    env: 'HULL_CPU_MODEL',
    description: 'guest CPU model (qemu-system-x86_64 -cpu help); auto: max under TCG, host under KVM',
    defaultValue: 'auto',
    check: (raw, env) => {
      if (raw !== 'auto' && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(raw)) {
        throw new HullError(
          'ERR_CONFIG',
          `${env}=${JSON.stringify(raw)} is not a CPU model name: \`qemu-system-x86_64 -cpu help\` lists them`,
        );
      }
      return raw;
    },
  },
  bootTimeoutSeconds: {
    env: 'HULL_BOOT_TIMEOUT',
    description: 'seconds a VM may take until its agent answers; auto: 60 under TCG, 20 under KVM',
    defaultValue: 'auto',
    check: (raw, env) => {
      if (raw !== 'auto' && !(Number(raw) > 0 && Number(raw) <= 3600)) {
        throw new HullError('ERR_CONFIG', `${env}=${raw} is not valid: give seconds, from 0.1 to 3600`);
      }
      return raw;
    },
  },
  agentSnapshot: {
    env: 'HULL_AGENT_SNAPSHOT',
    description: "start the guest agent from a V8 startup snapshot made for the guest's CPU (on or off)",
    defaultValue: 'on',
    check: oneOf('on', 'off'),
  },
};

export interface EffectiveSetting {
  name: SettingName;
  env: string;
  value: string;
  source: 'default' | 'environment';
  description: string;
}

/** One setting's effective value; a bad value throws a one-line error naming the variable. */
export function setting(name: SettingName, env: NodeJS.ProcessEnv = process.env): string {
  const spec = SETTINGS[name];
  const raw = env[spec.env];
  return raw === undefined || raw === '' ? spec.defaultValue : spec.check(raw, spec.env);
}

/** Every setting with its value and where the value came from, for `hull env`. */
export function effectiveSettings(env: NodeJS.ProcessEnv = process.env): EffectiveSetting[] {
  return (Object.keys(SETTINGS) as SettingName[]).map((name) => {
    const spec = SETTINGS[name];
    const fromEnv = env[spec.env] !== undefined && env[spec.env] !== '';
    return {
      name,
      env: spec.env,
      value: setting(name, env),
      source: fromEnv ? 'environment' : 'default',
      description: spec.description,
    };
  });
}
