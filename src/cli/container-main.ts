import { closeInheritedDescriptors } from '../sys/inherited-fds.js';
import { CONTAINER_VERBS } from './container-verbs.js';
import { runCli } from './program.js';
import { runOrSnapshot } from './startup-snapshot.js';
import { verbWord } from './verb-word.js';

/**
 * The container program (dist/bundle/hull-container.cjs, which entry.ts starts for the words
 * in CONTAINER_WORDS): the full program's command line with the verbs that start a container's
 * VM (`run`, `create` and the monitor `create` leaves behind), one CommonJS file compiled from
 * a V8 code cache, so that the modules they need (the VMM driver, the agent's protocol and its
 * descriptors) are not resolved and compiled one by one before the VM can start. bin/hull
 * starts `run` and `create` from a Node startup snapshot of this file when it can
 * (startup-snapshot.ts): then what follows runs when the snapshot starts, not as it is made.
 */
runOrSnapshot(() => {
  closeInheritedDescriptors();
  void runCli(process.argv, async (argv) => {
    const word = verbWord(argv);
    const register = word === undefined ? undefined : CONTAINER_VERBS[word];
    if (!register) throw new Error(`the container program was started for ${word ?? 'no verb'}`);
    return [register];
  });
});
