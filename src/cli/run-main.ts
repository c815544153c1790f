import { closeInheritedDescriptors } from '../sys/inherited-fds.js';
import { runCli } from './program.js';
import { registerRun } from './run.js';

/**
 * The run program (dist/bundle/hull-run.cjs, which entry.ts starts for `hull run`): the full
 * program's command line with `run` only, one CommonJS file compiled from a V8 code cache, so
 * that the modules `hull run` needs (the VMM driver, the agent's protocol and its descriptors)
 * are not resolved and compiled one by one before the VM can start.
 */
closeInheritedDescriptors();
void runCli(process.argv, async () => [registerRun]);
