import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/**
 * The host's TSC frequency in kHz, when the host states it reliably.
 *
 * Under TCG the guest's TSC ticks at the host's rate, and the guest kernel measures that rate
 * against an emulated PIT at boot. On a busy host the emulated PIT is too irregular: the
 * kernel gives up ("Unable to calibrate against PIT"), marks the TSC unstable, and stalls
 * before init. Telling it the rate (tsc_early_khz=) skips the measurement.
 */
export async function hostTscKhz(
  cpuinfoPath = '/proc/cpuinfo',
  cpufreqDir = '/sys/devices/system/cpu/cpu0/cpufreq',
): Promise<number | undefined> {
  const cpuinfo = await readFile(cpuinfoPath, 'utf8').catch(() => '');
  const firstCpu = cpuinfo.split('\n\n')[0] ?? '';
  const flags = /^flags\s*:\s*(.*)$/m.exec(firstCpu)?.[1]?.split(' ') ?? [];
  if (!flags.includes('constant_tsc')) return undefined;
  // Without a cpufreq driver nothing scales the clock, and "cpu MHz" is the TSC's rate.
  const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)$/m.exec(firstCpu)?.[1]);
  if (!existsSync(cpufreqDir) && mhz > 0) return Math.round(mhz * 1000);
  // With frequency scaling, the nominal frequency in the model name is the TSC's.
  const ghz = Number(/@\s*([\d.]+)\s*GHz/.exec(/^model name\s*:\s*(.*)$/m.exec(firstCpu)?.[1] ?? '')?.[1]);
  return ghz > 0 ? Math.round(ghz * 1_000_000) : undefined;
}
