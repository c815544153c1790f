import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startupSnapshot } from 'node:v8';
import { bundleDirOf } from './snapshot-files.js';

/**
 * The container program from a Node startup snapshot: a heap in which its modules have been
 * evaluated already, so that Node starts it without compiling and running some 140 modules
 * (scripts/bundle.mjs makes the blob, `node --snapshot-blob B --build-snapshot
 * hull-container.cjs`, and bin/hull gives it to Node for `run` and `create`). Measured with
 * farm-bench, `bin/hull run` of a missing bundle took 57 ms against 70 from the code cache.
 * The monitor does not start from it: Node keeps the blob it read (6 MiB) for the process's
 * life, and a monitor, which lives as long as its container, held 4.1 MiB more private memory.
 *
 * A blob is code: Node runs what it holds, and it fails (exit 14, "Failed to load the startup
 * snapshot") on a blob made by another Node or with other V8 flags, and crashes on a damaged
 * one. So bin/hull gives it to Node only when all of these hold (its unit tests run copies of
 * bin/hull against each); otherwise the program is loaded from its source and code cache (entry.ts),
 * which costs time, never behaviour:
 *  - its owner is the user running hull (the test sh can make without a process, `-O`). Its
 *    mode sh cannot see: the build writes it 0644 and by a rename, as it writes the programs
 *    beside it, which bin/hull loads unchecked;
 *  - the stamp beside it (SNAPSHOT_STAMP) has the mtime, to the nanosecond, of the node that
 *    will run it: the build copies it from the node that made the blob. An upgraded Node, from
 *    a package (whose files keep the package's mtimes, so "newer than" would not do) or built
 *    over the old one, has another;
 *  - NODE_OPTIONS is empty (V8 flags there would make Node refuse the blob).
 * The build removes the blob before it rewrites the programs, and makes it after.
 *
 * What a module computes as it loads is frozen in the blob (the audit is in the commit that
 * made this): hull's modules read the environment, the clock, the terminal and the settings
 * when a command runs, not as they load. One thing is not: the bundle's own location
 * (__filename, from which the native helpers are found). So the blob holds the directory it
 * was made in, and a blob started for a script elsewhere loads that script as Node would have.
 *
 * Runs `main`, or, in a build of a snapshot, makes it the snapshot's main function: it runs
 * when the blob is made for this location (the script in process.argv[1] loads its programs
 * from the directory the blob was made in), and otherwise that script is run as Node runs a
 * script given to it, which loads the program from its source.
 */
export function runOrSnapshot(main: () => void): void {
  if (!startupSnapshot.isBuildingSnapshot()) {
    main();
    return;
  }
  const madeIn = realpathSync(dirname(fileURLToPath(import.meta.url)));
  startupSnapshot.setDeserializeMainFunction(() => {
    const script = process.argv[1];
    if (bundleDirOf(script) === madeIn) main();
    else if (!script) {
      process.stderr.write('hull: started from its snapshot without a script\n');
      process.exitCode = 1;
    } else createRequire(realpathSync(script))(realpathSync(script));
  });
}
