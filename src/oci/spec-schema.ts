import { HullError } from '../errors.js';
import { CAPABILITY_NAMES } from './capabilities.js';
import { INPUT_LIMITS as L } from './input-limits.js';
import {
  ROOTFS_ANNOTATION,
  ROOTFS_ANNOTATION_VALUES,
  ROOTFS_DISK_ANNOTATION,
  ROOTFS_IMAGE_ANNOTATION,
} from './rootfs-annotations.js';
import { allOf, fields, flag, integer, listOf, mapOf, oneOf, type Shape, ShapeError, text } from './shape.js';
import type { Process, Spec } from './spec.js';

/**
 * The runtime-spec's types for every field hull or the guest reads, with hull's bounds
 * (input-limits.ts), checked before anything is started: config.json at every front door
 * (create, run, the shim's Create), an exec's process (`hull exec`, the shim's Exec) and a
 * resources update. Meaning across fields (namespaces a sysctl needs, soft below hard, hooks'
 * paths) is checked after, in checks.ts and value-checks.ts.
 */

const UINT32_MAX = 2 ** 32 - 1;
const INT32_MAX = 2 ** 31 - 1;
/** The convention for "unlimited" in 64-bit unsigned fields (RLIM_INFINITY, seccomp masks). */
const UINT64_MAX = 2 ** 64;

const path = text({ max: L.pathChars, why: `at most ${L.pathChars} (PATH_MAX)` });
const absolutePath = text({ max: L.pathChars, why: `at most ${L.pathChars} (PATH_MAX)`, absolutePath: true });
const word = text({ max: L.wordChars, why: `at most ${L.wordChars}` });
const argument = text({ max: L.argumentChars, why: `at most ${L.argumentChars} (MAX_ARG_STRLEN)` });
const words = (max: number, why: string) => listOf(word, { max, why });

const uint32 = integer(0, UINT32_MAX, `give a whole number from 0 to ${UINT32_MAX}`);
const uint64 = integer(0, UINT64_MAX, 'give a whole number from 0');
/** A user or group ID; 2^32 - 1 is (uid_t) -1, "no ID". */
const id = integer(0, UINT32_MAX - 1, `give an ID from 0 to ${UINT32_MAX - 1}`);
const bytes = (unlimited: string) =>
  integer(-1, L.bytes, `give -1 (${unlimited}) or a number of bytes up to ${L.bytes}`);
const count = (max: number, what: string) => integer(0, max, `give ${what} from 0 to ${max}`);

/** A cpuset list: "0-3,8,10-11", with CPU (or node) numbers the kernel can have. */
const cpuList: Shape = allOf(
  text({
    max: L.wordChars,
    why: `at most ${L.wordChars}`,
    pattern: /^\s*(\d+(-\d+)?(\s*,\s*\d+(-\d+)?)*)?\s*$/,
    hint: 'is not a CPU list: write numbers and ranges such as "0-3,8"',
  }),
  (value, at) => {
    for (const range of (value as string).split(',')) {
      const [from = 0, to = from] = range.split('-').map((n) => Number(n.trim()));
      if (to >= L.cpuNumbers)
        throw new ShapeError(at, value, `names CPU ${to}: numbers go up to ${L.cpuNumbers - 1}`);
      if (to < from) throw new ShapeError(at, value, `has the range ${range.trim()}, which runs backwards`);
    }
  },
);

const idMappings = listOf(fields({ containerID: uint32, hostID: uint32, size: uint32 }, ['size']), {
  max: L.idMappings,
  why: 'the kernel takes no more lines in an ID map',
});

const environment = listOf(
  allOf(argument, (value, at) => {
    const eq = (value as string).indexOf('=');
    if (eq < 1) throw new ShapeError(at, value, 'must be written NAME=VALUE');
  }),
  { max: L.environment, why: 'environment variables' },
);

const capabilitySet = listOf(
  oneOf(CAPABILITY_NAMES, 'use names such as CAP_NET_ADMIN (see capabilities(7))'),
  { max: L.capabilities, why: 'Linux has 41 capabilities' },
);

const processShape = fields(
  {
    terminal: flag,
    consoleSize: fields({ height: count(65_535, 'rows'), width: count(65_535, 'columns') }, [
      'height',
      'width',
    ]),
    user: fields(
      {
        uid: id,
        gid: id,
        umask: integer(0, 0o777, 'give permission bits, such as 18 (0o022)'),
        additionalGids: listOf(id, { max: L.additionalGids, why: 'NGROUPS_MAX' }),
        username: word,
      },
      ['uid', 'gid'],
    ),
    args: listOf(argument, { max: L.arguments, why: 'arguments', min: 1 }),
    commandLine: argument,
    env: environment,
    cwd: absolutePath,
    capabilities: fields({
      bounding: capabilitySet,
      effective: capabilitySet,
      inheritable: capabilitySet,
      permitted: capabilitySet,
      ambient: capabilitySet,
    }),
    rlimits: listOf(fields({ type: word, soft: uint64, hard: uint64 }, ['type', 'soft', 'hard']), {
      max: L.rlimits,
      why: 'Linux has 16 resource limits',
    }),
    noNewPrivileges: flag,
    apparmorProfile: word,
    oomScoreAdj: integer(-1000, 1000, 'give a number from -1000 to 1000'),
    selinuxLabel: word,
    ioPriority: fields({ class: word, priority: integer(0, 7, 'give a level from 0 to 7') }, ['class']),
    scheduler: fields(
      {
        policy: word,
        nice: integer(-20, 19, 'give a nice value from -20 to 19'),
        priority: integer(0, 99, 'give a priority from 0 to 99'),
        flags: words(16, 'scheduler flags'),
        runtime: uint64,
        deadline: uint64,
        period: uint64,
      },
      ['policy'],
    ),
    execCPUAffinity: fields({ initial: cpuList, final: cpuList }),
  },
  ['user', 'cwd', 'args'],
);

const mountShape = fields(
  {
    destination: absolutePath,
    type: word,
    source: path,
    options: words(L.mountOptions, 'mount options'),
    uidMappings: idMappings,
    gidMappings: idMappings,
  },
  ['destination'],
);

const hookShape = fields(
  {
    path: absolutePath,
    args: listOf(argument, { max: L.arguments, why: 'arguments' }),
    env: environment,
    timeout: integer(1, INT32_MAX, 'give whole seconds above 0'),
  },
  ['path'],
);

const hooks = listOf(hookShape, { max: L.hooksPerPoint, why: 'hooks at one point' });

const deviceNumber = (n: 'major' | 'minor') =>
  integer(-1, UINT32_MAX, `give the device's ${n} number (or -1 for any, in a cgroup rule)`);

const resourceList = (item: Shape) => listOf(item, { max: L.resourceEntries, why: 'entries' });
const blockDevice = (extra: Record<string, Shape>) =>
  fields({ major: deviceNumber('major'), minor: deviceNumber('minor'), ...extra });

/** linux.resources, also the body of `hull update`. */
export const RESOURCES_SHAPE: Shape = fields({
  devices: listOf(
    fields(
      {
        allow: flag,
        type: word,
        major: deviceNumber('major'),
        minor: deviceNumber('minor'),
        access: word,
      },
      ['allow'],
    ),
    { max: L.deviceRules, why: 'device rules' },
  ),
  memory: fields({
    limit: bytes('no limit'),
    reservation: bytes('none'),
    swap: bytes('no limit'),
    kernel: bytes('no limit'),
    kernelTCP: bytes('no limit'),
    swappiness: count(100, 'a swappiness'),
    disableOOMKiller: flag,
    useHierarchy: flag,
    checkBeforeUpdate: flag,
  }),
  cpu: fields({
    shares: count(L.cpuShares, 'shares'),
    // -1 and 0 are runc's "no limit" (Kubernetes writes -1 to lift one); the kernel's least
    // quota is 1 ms.
    quota: integer(
      -1,
      L.bytes,
      `give microseconds from ${L.cpuQuotaMinUs}, or -1 for no limit`,
      (n) => n <= 0 || n >= L.cpuQuotaMinUs,
    ),
    burst: integer(0, L.bytes, 'give microseconds from 0'),
    // 0 is runc's "the default" (100000).
    period: integer(
      0,
      L.cpuPeriodMaxUs,
      `give microseconds from ${L.cpuPeriodMinUs} to ${L.cpuPeriodMaxUs}, or 0 for the default`,
      (n) => n === 0 || n >= L.cpuPeriodMinUs,
    ),
    realtimeRuntime: integer(-1, L.bytes, 'give microseconds, or -1'),
    realtimePeriod: integer(0, L.bytes, 'give microseconds'),
    cpus: cpuList,
    mems: cpuList,
    idle: integer(0, 1, 'give 0 or 1'),
  }),
  pids: fields({
    limit: integer(-1, L.pids, `give -1 or 0 (no limit) or a number of tasks up to ${L.pids}`),
  }),
  blockIO: fields({
    weight: count(1000, 'a weight'),
    leafWeight: count(1000, 'a weight'),
    weightDevice: resourceList(
      blockDevice({ weight: count(1000, 'a weight'), leafWeight: count(1000, 'a weight') }),
    ),
    throttleReadBpsDevice: resourceList(blockDevice({ rate: uint64 })),
    throttleWriteBpsDevice: resourceList(blockDevice({ rate: uint64 })),
    throttleReadIOPSDevice: resourceList(blockDevice({ rate: uint64 })),
    throttleWriteIOPSDevice: resourceList(blockDevice({ rate: uint64 })),
  }),
  hugepageLimits: resourceList(fields({ pageSize: word, limit: uint64 }, ['pageSize'])),
  network: fields({
    classID: uint32,
    priorities: resourceList(fields({ name: word, priority: uint32 }, ['name'])),
  }),
  rdma: mapOf(fields({ hcaHandles: uint32, hcaObjects: uint32 }), {
    maxEntries: L.resourceEntries,
    maxKey: L.wordChars,
    why: 'RDMA devices',
  }),
  unified: mapOf(word, { maxEntries: L.resourceEntries, maxKey: L.wordChars, why: 'cgroup files' }),
});

const seccompShape = fields({
  defaultAction: word,
  defaultErrnoRet: uint32,
  architectures: words(64, 'architectures'),
  flags: words(16, 'seccomp flags'),
  listenerPath: absolutePath,
  listenerMetadata: word,
  syscalls: listOf(
    fields({
      names: words(L.seccompNames, 'system calls in one rule'),
      action: word,
      errnoRet: uint32,
      args: listOf(
        fields({
          index: integer(0, 5, 'give an argument index from 0 to 5'),
          value: uint64,
          valueTwo: uint64,
          op: word,
        }),
        { max: 6, why: 'a system call has 6 arguments' },
      ),
    }),
    { max: L.seccompRules, why: 'seccomp rules' },
  ),
});

const linuxShape = fields({
  namespaces: listOf(fields({ type: word, path: absolutePath }, ['type']), {
    max: L.namespaces,
    why: 'namespace types',
  }),
  uidMappings: idMappings,
  gidMappings: idMappings,
  timeOffsets: mapOf(fields({ secs: integer(-L.bytes, L.bytes, 'give seconds'), nanosecs: uint32 }), {
    maxEntries: 2,
    maxKey: 16,
    why: 'clocks',
  }),
  devices: listOf(
    fields(
      {
        path: absolutePath,
        type: word,
        major: deviceNumber('major'),
        minor: deviceNumber('minor'),
        fileMode: integer(0, 0o177777, 'give permission bits (and, as podman writes them, the type bits)'),
        uid: id,
        gid: id,
      },
      ['path', 'type'],
    ),
    { max: L.devices, why: 'device nodes' },
  ),
  cgroupsPath: path,
  resources: RESOURCES_SHAPE,
  sysctl: mapOf(
    text({ max: L.sysctlValueChars, why: `at most ${L.sysctlValueChars} (one write to /proc/sys)` }),
    { maxEntries: L.sysctls, maxKey: 256, why: 'sysctls' },
  ),
  seccomp: seccompShape,
  rootfsPropagation: word,
  maskedPaths: listOf(absolutePath, { max: L.paths, why: 'masked paths' }),
  readonlyPaths: listOf(absolutePath, { max: L.paths, why: 'read-only paths' }),
  mountLabel: word,
  personality: fields({ domain: word, flags: words(16, 'personality flags') }),
});

const hostname = text({
  max: L.hostnameChars,
  why: `at most ${L.hostnameChars} (HOST_NAME_MAX)`,
});

const rootfsChoice = oneOf(new Set(ROOTFS_ANNOTATION_VALUES), `use ${ROOTFS_ANNOTATION_VALUES.join(' or ')}`);

/**
 * The root disks' annotations, when there: absolute paths (their places are checked later),
 * and the choice of where the root is (share or disk).
 */
const rootfsDiskAnnotations: Shape = (value, at) => {
  for (const key of [ROOTFS_IMAGE_ANNOTATION, ROOTFS_DISK_ANNOTATION]) {
    const annotation = (value as Record<string, unknown>)[key];
    if (annotation !== undefined) absolutePath(annotation, `${at}[${key}]`);
  }
  const choice = (value as Record<string, unknown>)[ROOTFS_ANNOTATION];
  if (choice !== undefined) rootfsChoice(choice, `${at}[${ROOTFS_ANNOTATION}]`);
};

const SPEC_SHAPE: Shape = fields(
  {
    ociVersion: word,
    root: fields({ path: text({ max: L.pathChars, why: 'PATH_MAX', nonEmpty: true }), readonly: flag }, [
      'path',
    ]),
    process: processShape,
    hostname,
    domainname: hostname,
    mounts: listOf(mountShape, { max: L.mounts, why: 'mounts' }),
    hooks: fields({
      prestart: hooks,
      createRuntime: hooks,
      createContainer: hooks,
      startContainer: hooks,
      poststart: hooks,
      poststop: hooks,
    }),
    annotations: allOf(
      mapOf(text({ max: L.annotationValueChars, why: `at most ${L.annotationValueChars}` }), {
        maxEntries: L.annotations,
        maxKey: L.annotationKeyChars,
        why: 'annotations',
      }),
      rootfsDiskAnnotations,
    ),
    linux: linuxShape,
  },
  ['root', 'process'],
);

/** What to do about a missing field, for the ones a user can leave out by mistake. */
const MISSING_HINTS: Record<string, string> = {
  root: 'name the root filesystem',
  'root.path': 'name the root filesystem',
  process: 'name the program to run',
  'process.args': 'name the program to run',
  'process.cwd': 'give the working directory',
  'process.user': 'give the user (uid and gid)',
};

function refusal(err: unknown, where: string): never {
  if (!(err instanceof ShapeError)) throw err;
  const hint = MISSING_HINTS[err.path];
  const empty = err.value === undefined || (Array.isArray(err.value) && err.value.length === 0);
  throw new HullError('ERR_CONFIG', `${where}: ${err.message}${empty && hint ? `: ${hint}` : ''}`);
}

/** Checks a parsed config.json; `file` names it in the one-line error. */
export function checkSpecShape(spec: unknown, file: string): asserts spec is Spec {
  try {
    SPEC_SHAPE(spec, '');
  } catch (err) {
    refusal(err, file);
  }
}

/** Checks an exec's process (`hull exec`, the shim's Exec); `where` names its source. */
export function checkProcessShape(process: unknown, where: string): asserts process is Process {
  try {
    processShape(process, 'process');
  } catch (err) {
    refusal(err, where);
  }
}

/** Checks a resources update (`hull update`). */
export function checkResourcesShape(resources: unknown, where: string): void {
  try {
    RESOURCES_SHAPE(resources, 'linux.resources');
  } catch (err) {
    refusal(err, where);
  }
}
