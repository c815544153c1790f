import type { Command } from 'commander';
import { registerMonitorVerb } from './container-ref.js';

export function registerPause(program: Command): void {
  registerMonitorVerb(program, {
    name: 'pause',
    description: 'freeze every process of the container',
    act: (monitor, signal) => monitor.pause(signal),
  });
}
