import type { Command } from 'commander';
import { rehomeTemplateHolders } from '../template/rehome.js';
import { registerMonitorVerb } from './container-ref.js';

export function registerStart(program: Command): void {
  registerMonitorVerb(program, {
    name: 'start',
    description: "start a created container's process",
    // The client runs `start` itself, outside conmon's tree: the moment to take the template
    // holders its create made out of it (see rehomeTemplateHolders).
    act: async (monitor, signal) => {
      await monitor.start(signal);
      await rehomeTemplateHolders(signal);
    },
  });
}
