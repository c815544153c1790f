import { closeInheritedDescriptors } from '../sys/inherited-fds.js';
import { runCli } from './program.js';
import { verbsFor } from './verbs.js';

// The full program (dist/bundle/hull.mjs): every verb, each loaded when it runs.
closeInheritedDescriptors();
await runCli(process.argv, verbsFor);
