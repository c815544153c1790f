import { HullError } from '../errors.js';
import { parseArch } from '../hypervisor/arch.js';
import { parseCpuSpec } from '../hypervisor/cpu-model.js';
import { DEFAULT_TCG_CACHE_MIB } from '../hypervisor/qemu/command-line.js';
import { isIPv4 } from '../network/ipv4-subnet.js';

/**
 * hull's settings: one table of every knob, each with its key in the configuration file
 * (config-file.ts), its environment variable, its default and its check, so that `hull env`
 * can print the effective value and where it came from, and a bad value is one line naming
 * the key or variable. Precedence: a verb's flag, then the environment, then the file, then
 * the default.
 */
export type SettingName =
  | 'root'
  | 'stateDir'
  | 'accel'
  | 'arch'
  | 'cpuModel'
  | 'vcpus'
  | 'memoryMiB'
  | 'tcgCacheMiB'
  | 'bootTimeoutSeconds'
  | 'agentSnapshot'
  | 'template'
  | 'debugConsole'
  | 'kernel'
  | 'logLevel'
  | 'logFormat'
  | 'traceDir'
  | 'serveBridge'
  | 'serveSubnet'
  | 'servePortsHost';

/** How a value is written in the TOML file; the table keeps every value as a string. */
export type FileType = 'string' | 'integer' | 'number-or-auto' | 'switch';

interface SettingSpec {
  env: string;
  /** Dotted key in the configuration file: `vm.accelerator` is `[vm] accelerator = …`. */
  fileKey: string;
  fileType: FileType;
  description: string;
  defaultValue: string;
  /** Returns the value as hull uses it, or throws a one-line HullError naming `where`. */
  check(raw: string, where: string): string;
}

const oneOf =
  (...allowed: string[]) =>
  (raw: string, where: string) => {
    if (!allowed.includes(raw))
      throw new HullError('ERR_CONFIG', `${where}=${raw} is not valid: use one of ${allowed.join(', ')}`);
    return raw;
  };

const wholeNumber = (min: number, max: number, unit: string) => (raw: string, where: string) => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new HullError('ERR_CONFIG', `${where}=${raw} is not valid: give ${unit} from ${min} to ${max}`);
  }
  return String(n);
};

/** The VM sizes hull accepts, from settings or added up from a pod's sizing hints. */
export const VM_SIZE_LIMITS = {
  vcpus: { min: 1, max: 64 },
  memoryMiB: { min: 128, max: 262_144 },
} as const;

const SETTINGS: Record<SettingName, SettingSpec> = {
  root: {
    env: 'HULL_ROOT',
    fileKey: 'root',
    fileType: 'string',
    description: 'runtime root: one directory per sandbox (when --root is not given)',
    defaultValue: '/run/hull',
    check: (raw) => raw,
  },
  stateDir: {
    env: 'HULL_STATE_DIR',
    fileKey: 'state_dir',
    fileType: 'string',
    description: 'where guest images, snapshots and probes are cached',
    defaultValue: '/var/lib/hull',
    check: (raw) => raw,
  },
  accel: {
    env: 'HULL_ACCEL',
    fileKey: 'vm.accelerator',
    fileType: 'string',
    description: 'accelerator: auto (KVM where it really works, else TCG), kvm or tcg',
    defaultValue: 'auto',
    check: oneOf('auto', 'kvm', 'tcg'),
  },
  arch: {
    env: 'HULL_ARCH',
    fileKey: 'vm.arch',
    fileType: 'string',
    description:
      "guest architecture: auto (the host's), x86_64 (amd64) or arm64 (aarch64, emulated on an x86_64 host)",
    defaultValue: 'auto',
    check: (raw, where) => {
      if (raw === 'auto') return raw;
      const arch = parseArch(raw);
      if (!arch) {
        throw new HullError(
          'ERR_CONFIG',
          `${where}=${raw} is not valid: use auto, x86_64 (amd64) or arm64 (aarch64)`,
        );
      }
      return arch;
    },
  },
  cpuModel: {
    env: 'HULL_CPU_MODEL',
    fileKey: 'vm.cpu_model',
    fileType: 'string',
    description:
      'guest CPU model and options, MODEL[,NAME=VALUE...] (qemu-system-x86_64 or qemu-system-aarch64 -cpu help; e.g. max,pauth=off); auto: host under KVM, under TCG max on x86_64, cortex-a72 on arm64',
    defaultValue: 'auto',
    check: (raw, where) => {
      const spec = raw === 'auto' ? undefined : parseCpuSpec(raw);
      if (spec && 'error' in spec) {
        throw new HullError(
          'ERR_CONFIG',
          `${where}=${JSON.stringify(raw)} is not valid: ${spec.error}; use MODEL[,NAME=VALUE...], models from \`qemu-system-x86_64 -cpu help\` (or qemu-system-aarch64)`,
        );
      }
      return raw;
    },
  },
  vcpus: {
    env: 'HULL_VCPUS',
    fileKey: 'vm.vcpus',
    fileType: 'integer',
    description: "a sandbox VM's vCPUs (a pod's sizing hints and a container's CPU set add to it)",
    defaultValue: '1',
    check: wholeNumber(VM_SIZE_LIMITS.vcpus.min, VM_SIZE_LIMITS.vcpus.max, 'vCPUs'),
  },
  memoryMiB: {
    env: 'HULL_MEMORY_MIB',
    fileKey: 'vm.memory_mib',
    fileType: 'integer',
    description: "a sandbox VM's memory in MiB (a pod's sizing hints add to it)",
    defaultValue: '512',
    check: wholeNumber(VM_SIZE_LIMITS.memoryMiB.min, VM_SIZE_LIMITS.memoryMiB.max, 'MiB'),
  },
  tcgCacheMiB: {
    env: 'HULL_TCG_CACHE_MIB',
    fileKey: 'vm.tcg_cache_mib',
    fileType: 'integer',
    description:
      "TCG's translation cache per VM in MiB: more can speed guests running much different code, and costs host memory",
    defaultValue: String(DEFAULT_TCG_CACHE_MIB),
    check: wholeNumber(16, 2048, 'MiB'),
  },
  bootTimeoutSeconds: {
    env: 'HULL_BOOT_TIMEOUT',
    fileKey: 'vm.boot_timeout',
    fileType: 'number-or-auto',
    description: 'seconds a VM may take until its agent answers; auto: 60 under TCG, 20 under KVM',
    defaultValue: 'auto',
    check: (raw, where) => {
      if (raw !== 'auto' && !(Number(raw) > 0 && Number(raw) <= 3600)) {
        throw new HullError('ERR_CONFIG', `${where}=${raw} is not valid: give seconds, from 0.1 to 3600`);
      }
      return raw;
    },
  },
  agentSnapshot: {
    env: 'HULL_AGENT_SNAPSHOT',
    fileKey: 'vm.agent_snapshot',
    fileType: 'switch',
    description: "start the guest agent from a V8 startup snapshot made for the guest's CPU (on or off)",
    defaultValue: 'on',
    check: oneOf('on', 'off'),
  },
  template: {
    env: 'HULL_TEMPLATE',
    fileKey: 'vm.template',
    fileType: 'switch',
    description:
      'clone each VM from a booted template of its size instead of booting it (on or off; off keeps guest memory pages unshared between sandboxes)',
    defaultValue: 'on',
    check: oneOf('on', 'off'),
  },
  debugConsole: {
    env: 'HULL_DEBUG_CONSOLE',
    fileKey: 'vm.debug_console',
    fileType: 'switch',
    description: 'give VMs a root shell port for `hull debug-console` (on or off; for debugging only)',
    defaultValue: 'off',
    check: oneOf('on', 'off'),
  },
  kernel: {
    env: 'HULL_KERNEL',
    fileKey: 'image.kernel',
    fileType: 'string',
    description: 'the guest kernel `hull image build` makes when --kernel is not given: debian or minimal',
    defaultValue: 'debian',
    check: oneOf('debian', 'minimal'),
  },
  logLevel: {
    env: 'HULL_LOG_LEVEL',
    fileKey: 'log.level',
    fileType: 'string',
    description: 'the least severe lines written with --log (--debug makes it debug)',
    defaultValue: 'info',
    check: oneOf('debug', 'info', 'warn', 'error'),
  },
  logFormat: {
    env: 'HULL_LOG_FORMAT',
    fileKey: 'log.format',
    fileType: 'string',
    description: 'the form of log lines when --log-format is not given: text or json',
    defaultValue: 'text',
    check: oneOf('text', 'json'),
  },
  traceDir: {
    env: 'HULL_TRACE_DIR',
    fileKey: 'trace.dir',
    fileType: 'string',
    description:
      'a directory where every sandbox (monitor, `hull run`, shim) writes its boot trace when it ends; empty: none',
    defaultValue: '',
    check: (raw, where) => {
      if (raw !== '' && !raw.startsWith('/'))
        throw new HullError(
          'ERR_CONFIG',
          `${where}=${raw} is not valid: give an absolute directory, or nothing`,
        );
      return raw;
    },
  },
  serveBridge: {
    env: 'HULL_SERVE_BRIDGE',
    fileKey: 'serve.bridge',
    fileType: 'string',
    description:
      "the host bridge `hull serve` joins its network 'internet' sandboxes to (made if missing; never another tool's)",
    defaultValue: 'hull-serve0',
    check: (raw, where) => {
      if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,14}$/.test(raw))
        throw new HullError(
          'ERR_CONFIG',
          `${where}=${raw} is not valid: give an interface name of 1 to 15 letters, digits, _ or -`,
        );
      return raw;
    },
  },
  serveSubnet: {
    env: 'HULL_SERVE_SUBNET',
    fileKey: 'serve.subnet',
    fileType: 'string',
    description:
      "the IPv4 subnet of `hull serve`'s bridge (its first address is the gateway); must not overlap a network the host routes",
    defaultValue: '10.208.0.0/16',
    check: (raw, where) => {
      const [address, prefix] = raw.split('/');
      const length = Number(prefix);
      if (!address || !isIPv4(address) || !Number.isInteger(length) || length < 8 || length > 28)
        throw new HullError(
          'ERR_CONFIG',
          `${where}=${raw} is not valid: give an IPv4 subnet as ADDRESS/PREFIX, prefix 8 to 28`,
        );
      return raw;
    },
  },
  servePortsHost: {
    env: 'HULL_SERVE_PORTS_HOST',
    fileKey: 'serve.ports_host',
    fileType: 'string',
    description:
      'the host address the URLs of sandbox.ports.url(port) listen on (127.0.0.1: this machine only)',
    defaultValue: '127.0.0.1',
    check: (raw, where) => {
      if (!isIPv4(raw) && !/^[0-9a-fA-F:]+$/.test(raw))
        throw new HullError('ERR_CONFIG', `${where}=${raw} is not valid: give an IP address of this host`);
      return raw;
    },
  },
};

/** Every setting's file key and type, for reading the configuration file. */
export function fileKeys(): { name: SettingName; key: string; type: FileType }[] {
  return (Object.keys(SETTINGS) as SettingName[]).map((name) => ({
    name,
    key: SETTINGS[name].fileKey,
    type: SETTINGS[name].fileType,
  }));
}

/** Checks a value read from the file; `where` is "FILE: KEY" for the error. */
export function checkFileValue(name: SettingName, raw: string, where: string): string {
  return SETTINGS[name].check(raw, where);
}

/** The values of the configuration file in force (see config-file.ts), already checked. */
let fileLayer: { path: string; values: Map<SettingName, string> } | undefined;

export function useConfigFile(layer: { path: string; values: Map<SettingName, string> } | undefined): void {
  fileLayer = layer;
}

export function configFileInUse(): string | undefined {
  return fileLayer?.path;
}

export interface EffectiveSetting {
  name: SettingName;
  env: string;
  fileKey: string;
  value: string;
  source: 'default' | 'file' | 'environment';
  description: string;
}

function sourceOf(name: SettingName, env: NodeJS.ProcessEnv): EffectiveSetting['source'] {
  const raw = env[SETTINGS[name].env];
  if (raw !== undefined && raw !== '') return 'environment';
  return fileLayer?.values.has(name) ? 'file' : 'default';
}

/** One setting's effective value; a bad value throws a one-line error naming the variable. */
export function setting(name: SettingName, env: NodeJS.ProcessEnv = process.env): string {
  const spec = SETTINGS[name];
  switch (sourceOf(name, env)) {
    case 'environment':
      return spec.check(env[spec.env]!, spec.env);
    case 'file':
      return fileLayer!.values.get(name)!;
    default:
      return spec.defaultValue;
  }
}

/**
 * Checks every setting the environment gives (the file's were checked when it was read), so
 * that a verb which starts a VM refuses a bad value before it looks for an image or a bundle.
 */
export function checkSettings(env: NodeJS.ProcessEnv = process.env): void {
  for (const name of Object.keys(SETTINGS) as SettingName[]) setting(name, env);
}

/** Every setting with its value and where the value came from, for `hull env`. */
export function effectiveSettings(env: NodeJS.ProcessEnv = process.env): EffectiveSetting[] {
  return (Object.keys(SETTINGS) as SettingName[]).map((name) => ({
    name,
    env: SETTINGS[name].env,
    fileKey: SETTINGS[name].fileKey,
    value: setting(name, env),
    source: sourceOf(name, env),
    description: SETTINGS[name].description,
  }));
}
