import type { Command } from 'commander';
import { registerMonitorVerb } from './container-ref.js';

export function registerResume(program: Command): void {
  registerMonitorVerb(program, {
    name: 'resume',
    description: 'thaw a paused container',
    act: (monitor, signal) => monitor.resume(signal),
  });
}
