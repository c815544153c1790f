import type { Command } from 'commander';
import { printOut } from './print.js';

/** What hull supports, in the runtime-spec "features" document's shape. */
export const FEATURES = {
  ociVersionMin: '1.0.0',
  ociVersionMax: '1.1.0',
  hooks: ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'],
  mountOptions: [
    'bind',
    'rbind',
    'ro',
    'rw',
    'nosuid',
    'nodev',
    'noexec',
    'relatime',
    'strictatime',
    'mode',
    'size',
  ],
  linux: {
    namespaces: ['cgroup', 'ipc', 'mount', 'network', 'pid', 'user', 'uts'],
    cgroup: { v1: false, v2: true, systemd: false, systemdUser: false },
    seccomp: { enabled: true },
    apparmor: { enabled: false },
    selinux: { enabled: false },
  },
  annotations: { 'org.opencontainers.runtime.kind': 'vm', 'dev.hull.guest': 'qemu-microvm' },
};

export function registerFeatures(program: Command): void {
  program
    .command('features')
    .description('print what this runtime supports, as JSON')
    .action(() => {
      printOut(`${JSON.stringify(FEATURES, null, 2)}\n`);
    });
}
