import type { Command } from 'commander';
import { verbWord } from './verb-word.js';

/** Adds one verb (or a few that live in one file) to the program. */
export type Register = (program: Command) => void;

interface Verb {
  /** The words that name it on the command line: its name, its aliases, its hidden helpers. */
  words: readonly string[];
  load: () => Promise<Register>;
}

/**
 * Every verb's module, in the order `hull --help` lists them, each loaded only when that verb
 * runs: a process starts with the modules its verb needs and no others, so `hull state` does
 * not evaluate the protobuf descriptors, the logger or the metrics of `hull run`, and neither
 * does a monitor those of `hull serve`.
 */
export const VERBS: readonly Verb[] = [
  { words: ['run'], load: async () => (await import('./run.js')).registerRun },
  { words: ['create'], load: async () => (await import('./create.js')).registerCreate },
  { words: ['_monitor'], load: async () => (await import('./monitor-helper.js')).registerMonitorHelper },
  { words: ['_resume'], load: async () => (await import('./resume-saved.js')).registerResumeSaved },
  { words: ['_podvm'], load: async () => (await import('./pod-vm.js')).registerPodVm },
  { words: ['start'], load: async () => (await import('./start.js')).registerStart },
  { words: ['state'], load: async () => (await import('./state.js')).registerState },
  { words: ['kill'], load: async () => (await import('./kill.js')).registerKill },
  { words: ['delete'], load: async () => (await import('./delete.js')).registerDelete },
  { words: ['exec', '_exec'], load: async () => (await import('./exec.js')).registerExec },
  { words: ['ps'], load: async () => (await import('./ps.js')).registerPs },
  { words: ['list', 'ls'], load: async () => (await import('./list.js')).registerList },
  { words: ['pause'], load: async () => (await import('./pause.js')).registerPause },
  { words: ['resume'], load: async () => (await import('./resume.js')).registerResume },
  { words: ['checkpoint'], load: async () => (await import('./checkpoint.js')).registerCheckpoint },
  { words: ['restore'], load: async () => (await import('./restore.js')).registerRestore },
  { words: ['update'], load: async () => (await import('./update.js')).registerUpdate },
  { words: ['events'], load: async () => (await import('./events.js')).registerEvents },
  {
    words: ['debug-console'],
    load: async () => (await import('./debug-console.js')).registerDebugConsole,
  },
  { words: ['trace'], load: async () => (await import('./trace.js')).registerTrace },
  { words: ['metrics'], load: async () => (await import('./metrics.js')).registerMetrics },
  { words: ['features'], load: async () => (await import('./features.js')).registerFeatures },
  { words: ['spec'], load: async () => (await import('./spec.js')).registerSpec },
  { words: ['image'], load: async () => (await import('./image.js')).registerImage },
  {
    words: ['container-images'],
    load: async () => (await import('./container-images.js')).registerContainerImages,
  },
  { words: ['serve'], load: async () => (await import('../serve/command.js')).registerServe },
  { words: ['template'], load: async () => (await import('./template.js')).registerTemplate },
  { words: ['check'], load: async () => (await import('./check.js')).registerCheck },
  { words: ['env'], load: async () => (await import('./env.js')).registerEnv },
];

/**
 * The verbs to register for `argv`: the one it names, or all of them when it names none that
 * hull knows (help, a typo to suggest a verb for, no verb at all), so what commander prints
 * is the same as with every verb loaded.
 */
export async function verbsFor(argv: readonly string[]): Promise<Register[]> {
  const word = verbWord(argv);
  if (word === '') return [];
  const named = word === undefined ? undefined : VERBS.find((v) => v.words.includes(word));
  return Promise.all((named ? [named] : VERBS).map((v) => v.load()));
}
