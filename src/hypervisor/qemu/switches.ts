/**
 * One builder per QEMU command-line switch, each returning the argv words for it. Keeping
 * them apart makes the command line readable in tests and easy to extend (hotplug, netdev).
 */

/** QEMU's option syntax escapes a comma in a value by doubling it. */
export function optionValue(value: string): string {
  return value.replace(/,/g, ',,');
}

function props(props: Record<string, string | number | boolean | undefined>): string {
  return Object.entries(props)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'boolean' ? (v ? 'on' : 'off') : optionValue(String(v))}`)
    .join(',');
}

export const machine = (type: string, options: Record<string, string | number | boolean | undefined>) => [
  '-machine',
  [type, props(options)].filter(Boolean).join(','),
];
export const accel = (type: string, options: Record<string, string | number | boolean | undefined> = {}) => [
  '-accel',
  [type, props(options)].filter(Boolean).join(','),
];
export const cpu = (model: string) => ['-cpu', model];
export const memory = (mib: number) => ['-m', `${mib}M`];
export const smp = (cpus: number) => ['-smp', String(cpus)];
export const kernel = (path: string) => ['-kernel', path];
export const initrd = (path: string) => ['-initrd', path];
export const append = (cmdline: string) => ['-append', cmdline];
export const noDefaults = () => ['-nodefaults', '-no-user-config'];
export const noGraphics = () => ['-display', 'none', '-vga', 'none'];
export const noReboot = () => ['-no-reboot'];
export const drive = (options: Record<string, string | number | boolean | undefined>) => [
  '-drive',
  props(options),
];
export const device = (
  driver: string,
  options: Record<string, string | number | boolean | undefined> = {},
) => ['-device', [driver, props(options)].filter(Boolean).join(',')];
export const fsdev = (backend: string, options: Record<string, string | number | boolean | undefined>) => [
  '-fsdev',
  [backend, props(options)].join(','),
];
export const chardev = (backend: string, options: Record<string, string | number | boolean | undefined>) => [
  '-chardev',
  [backend, props(options)].join(','),
];
export const mon = (chardevId: string, mode: 'control' | 'readline') => [
  '-mon',
  `chardev=${chardevId},mode=${mode}`,
];
export const serial = (chardevId: string) => ['-serial', `chardev:${chardevId}`];
export const name = (vmName: string) => ['-name', optionValue(vmName)];
export const sandbox = (options: Record<string, string>) => ['-sandbox', ['on', props(options)].join(',')];
export const netdev = (backend: string, options: Record<string, string | number | boolean | undefined>) => [
  '-netdev',
  [backend, props(options)].join(','),
];
export const object = (type: string, options: Record<string, string | number | boolean | undefined>) => [
  '-object',
  [type, props(options)].join(','),
];
/** Waits for a migration stream (a saved template's device state) instead of booting. */
export const incoming = (uri: string) => ['-incoming', uri];
