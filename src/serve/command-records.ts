import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../sys/atomic-file.js';
import { sandboxDir } from './sandbox-records.js';

/**
 * What serve keeps of each command it started, beside the sandbox's record
 * (`<root>/@serve/sandboxes/<id>/commands/<commandId>.json`), so that a server started after
 * one that was killed finds the commands still running in the guest and follows them again.
 * It goes with the command once its exit has been read, and with the sandbox in any case.
 */
export interface CommandRecord {
  commandId: string;
  /** The agent's name for the process: what a later server attaches to. */
  execId: string;
  pid: number;
  cmd: string[];
  background: boolean;
  /** Run on a terminal (`sandbox.pty`): one output stream, resizable. */
  pty: boolean;
  startedAt: string;
}

const COMMAND_ID = /^[0-9a-f-]{36}$/;
/** Records read at start are the server's own files, yet bounded: a sandbox has few commands. */
const MAX_RECORDS_PER_SANDBOX = 4096;

function commandsDir(root: string, sandboxId: string): string {
  return join(sandboxDir(root, sandboxId), 'commands');
}

export async function writeCommandRecord(
  root: string,
  sandboxId: string,
  record: CommandRecord,
): Promise<void> {
  const dir = commandsDir(root, sandboxId);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(join(dir, `${record.commandId}.json`), `${JSON.stringify(record)}\n`, {
    mode: 0o600,
  });
}

export async function removeCommandRecord(root: string, sandboxId: string, commandId: string): Promise<void> {
  if (!COMMAND_ID.test(commandId)) return;
  await rm(join(commandsDir(root, sandboxId), `${commandId}.json`), { force: true });
}

export async function readCommandRecords(root: string, sandboxId: string): Promise<CommandRecord[]> {
  const dir = commandsDir(root, sandboxId);
  const names = (await readdir(dir).catch(() => [] as string[])).slice(0, MAX_RECORDS_PER_SANDBOX);
  const records: CommandRecord[] = [];
  for (const name of names) {
    if (!name.endsWith('.json') || !COMMAND_ID.test(name.slice(0, -5))) continue;
    try {
      records.push(JSON.parse(await readFile(join(dir, name), 'utf8')) as CommandRecord);
    } catch {
      // Cut short while written (the temporary file is never read): nothing to follow.
    }
  }
  return records;
}
