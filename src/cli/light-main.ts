import { LIGHT_VERBS } from './light-verbs.js';
import { runCli } from './program.js';
import { verbWord } from './verb-word.js';

/**
 * The light program (dist/bundle/hull-light.cjs, which entry.ts starts for the words in
 * LIGHT_WORDS): the full program's command line with these verbs only, bundled without the
 * rest so that it is small enough to start from a V8 code cache at about the cost of Node
 * itself. Unlike the other programs it leaves the descriptors it inherited open
 * (closeInheritedDescriptors): these verbs start no process that could keep them, and looking
 * at each descriptor cost about half a millisecond of every `hull state`.
 */
void runCli(process.argv, async (argv) => {
  const word = verbWord(argv);
  if (word === '') return [];
  const register = word === undefined ? undefined : LIGHT_VERBS[word];
  if (!register) throw new Error(`the light program was started for ${word ?? 'no verb'}`);
  return [register];
});
