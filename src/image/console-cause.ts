/**
 * Why a guest stopped, read from its serial console. The console's last line is usually the
 * kernel's "reboot: machine restart", which says nothing; what says something is hull-init's
 * or the initramfs's own last word ("hull-init: agent exited with status 14"), the lines the
 * agent (or Node, or V8) wrote just before it, and a kernel panic. The guest controls every
 * byte of the console, so what is quoted is bounded.
 */
const MAX_CAUSE_CHARS = 400;
const CONTEXT_LINES = 2;

interface ConsoleLine {
  kernel: boolean;
  text: string;
}

function parseLine(raw: string): ConsoleLine {
  const m = /^\[\s*\d+\.\d+\]\s?(.*)$/.exec(raw);
  return m ? { kernel: true, text: m[1]! } : { kernel: false, text: raw };
}

/** The agent logs JSON lines; quote them as "scope: msg: error". */
function readable(text: string): string | undefined {
  if (text.startsWith('{')) {
    try {
      const entry = JSON.parse(text) as Record<string, unknown>;
      if (entry.level === 'debug' || entry.level === 'info') return undefined;
      const error = typeof entry.error === 'string' ? `: ${entry.error}` : '';
      return `${String(entry.scope ?? 'agent')}: ${String(entry.msg ?? '')}${error}`;
    } catch {}
  }
  // Native stack traces after a V8 or Node assertion: frames and separators say little.
  if (/^\s*(#|-----|\d+: 0x)/.test(text)) return undefined;
  return text.trim() || undefined;
}

/** The guest may write terminal escapes; none of them reaches the user's terminal. */
function stripControls(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control bytes is the point
  return text.replace(/[\r\x00-\x08\x0b-\x1f\x7f]/g, '');
}

function bounded(text: string): string {
  return text.length > MAX_CAUSE_CHARS ? `${text.slice(0, MAX_CAUSE_CHARS - 1)}…` : text;
}

function lastIndexOf<T>(items: T[], match: (item: T) => boolean): number {
  for (let i = items.length - 1; i >= 0; i--) if (match(items[i]!)) return i;
  return -1;
}

/** The cause of a guest's end, in one line, from its console text; undefined if it says none. */
export function consoleCause(consoleText: string): string | undefined {
  const lines = consoleText
    .split('\n')
    .map((l) => stripControls(l).trimEnd())
    .filter(Boolean)
    .map(parseLine);
  const panicIndex = lastIndexOf(lines, (l) => l.kernel && /Kernel panic - not syncing/.test(l.text));
  if (panicIndex >= 0) {
    const why = lines[panicIndex]!.text.replace(/^.*Kernel panic - not syncing:\s*/, '');
    return bounded(`the guest kernel panicked: ${why}`);
  }
  const initIndex = lastIndexOf(lines, (l) => !l.kernel && /^hull-(init|initramfs): /.test(l.text));
  if (initIndex < 0) return undefined;
  const said = lines[initIndex]!.text.replace(/; powering off$/, '');
  const context: string[] = [];
  for (let i = initIndex - 1; i >= 0 && context.length < CONTEXT_LINES; i--) {
    const line = lines[i]!;
    if (line.kernel) continue;
    if (/^hull-(init|initramfs): /.test(line.text)) break;
    const text = readable(line.text);
    if (text) context.unshift(text);
  }
  return bounded(context.length > 0 ? `${said}, after: ${context.join(' ')}` : said);
}

/** The cause, or the console's last line when nothing better is there. */
export function consoleCauseOrLastLine(consoleText: string): string {
  const cause = consoleCause(consoleText);
  if (cause) return cause;
  const last = consoleText
    .split('\n')
    .map((l) => parseLine(stripControls(l).trim()).text)
    .filter(Boolean)
    .pop();
  return bounded(last ? `its console's last line: ${last}` : 'its console is empty');
}
