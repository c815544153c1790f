import type { Command } from 'commander';
import { registerMonitorVerb } from './container-ref.js';

export function registerStart(program: Command): void {
  registerMonitorVerb(program, {
    name: 'start',
    description: "start a created container's process",
    act: (monitor, signal) => monitor.start(signal),
  });
}
