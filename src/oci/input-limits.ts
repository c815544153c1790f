/**
 * How much hull takes from a configuration (config.json, a process spec, a resources update,
 * a pod's sizing hints), in one place. Each bound is the kernel's own where it has one; the
 * others are far above what podman, Docker, containerd or Kubernetes write, and only keep a
 * hostile or broken input from costing memory, time or a VM before it is refused.
 */
export const INPUT_LIMITS = {
  /**
   * config.json's size. The largest real ones are CRI-O's, which copy the pod's annotations
   * (at most 256 KiB in Kubernetes) into one annotation, and those with a seccomp profile
   * (Docker's is about 30 KiB).
   */
  configBytes: 4 * 2 ** 20,
  /** A process spec for `hull exec --process` or a resources file for `hull update`. */
  processBytes: 2 * 2 ** 20,
  /** PATH_MAX. */
  pathChars: 4096,
  /** MAX_ARG_STRLEN: the kernel's limit on one argument or environment string. */
  argumentChars: 131_072,
  arguments: 32_768,
  environment: 32_768,
  /** HOST_NAME_MAX, for the hostname and the domain name. */
  hostnameChars: 64,
  /** Short words: mount types and options, namespace types, labels, profile names. */
  wordChars: 4096,
  mounts: 1024,
  mountOptions: 256,
  /** The kernel's limit on lines of a uid_map or gid_map. */
  idMappings: 340,
  /** NGROUPS_MAX. */
  additionalGids: 65_536,
  devices: 1024,
  deviceRules: 1024,
  sysctls: 512,
  /** A sysctl's value (what /proc/sys takes in one write). */
  sysctlValueChars: 4096,
  annotations: 4096,
  annotationKeyChars: 1024,
  annotationValueChars: 2 ** 20,
  hooksPerPoint: 64,
  namespaces: 16,
  /** Names in one capability set (Linux has 41). */
  capabilities: 128,
  rlimits: 64,
  /** Paths in linux.maskedPaths or linux.readonlyPaths. */
  paths: 1024,
  seccompRules: 4096,
  seccompNames: 4096,
  /** Numbered resource lists: hugepage sizes, network priorities, block devices, unified files. */
  resourceEntries: 256,
  /**
   * Byte counts and other int64 fields: above 2^53 a JSON number is not exact in JavaScript,
   * so hull could not pass it on as written (8 PiB is beyond any VM anyway).
   */
  bytes: Number.MAX_SAFE_INTEGER,
  /** PID_MAX_LIMIT: pids.max takes nothing larger. */
  pids: 4_194_304,
  /** The highest CPU number a cpuset may name, plus one (the kernel's largest NR_CPUS). */
  cpuNumbers: 8192,
  /** MAX_SHARES of the kernel's CFS. */
  cpuShares: 262_144,
  /** CFS bandwidth: a period from 1 ms to 1 s, a quota of at least 1 ms, in microseconds. */
  cpuPeriodMinUs: 1000,
  cpuPeriodMaxUs: 1_000_000,
  cpuQuotaMinUs: 1000,
} as const;
