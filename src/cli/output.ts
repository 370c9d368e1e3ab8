/** Printing for commands: human text on a TTY, `--json` for machines, errors with their fix. */
import { IdsyncError, toIdsyncError } from '../core/errors.js';
import { fromFileSystemFailure } from '../core/fs-errors.js';
import { exitCodeFor } from './exit-codes.js';

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/**
 * Text for a person's terminal: DNs and attribute values come from directories and files anyone
 * may have written, so control characters (C0, DEL, C1 — terminal escapes among them) and bidi
 * overrides are shown escaped (`\x1b`, `\n`, `\u202e`) instead of being obeyed. With
 * keepNewlines, "\n" stays a line break (for text we laid out ourselves).
 */
export function escapeControl(text: string, keepNewlines = false): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    if (c === '\n') return keepNewlines ? c : '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    const n = c.charCodeAt(0);
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
  });
}

/** One line (or a block we laid out) for people: control characters in it are escaped. */
export function println(line = ''): void {
  process.stdout.write(escapeControl(line, true) + '\n');
}

/** Progress lines go to stderr so that stdout stays clean for --json and pipes. */
export function progress(line: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${line}`);
  else process.stderr.write(line + '\n');
}

/** What a step's progress count means, worded so it reads like the summary's columns. */
const PROGRESS_NOUN: Record<string, string> = { import: 'objects read', export: 'objects written' };

let pendingProgress: { line: string; printed: boolean } | undefined;

function flushProgress(): void {
  // The last count of a step is always shown: a throttled line that lags behind the summary
  // ("import: 4 objects" next to "adds 6") made people doubt the summary.
  if (pendingProgress && !pendingProgress.printed) progress(pendingProgress.line);
  if (pendingProgress && process.stderr.isTTY) process.stderr.write('\n');
  pendingProgress = undefined;
}

/**
 * A progress callback that prints at most every 250 ms (a long run must not flood the terminal);
 * the final count of each step is printed when the next step starts or at endProgress().
 */
export function throttledProgress(): (p: { connector: string; step: string; done: number }) => void {
  let last = 0;
  let key = '';
  return (p) => {
    const k = `${p.step} ${p.connector}`;
    if (k !== key) {
      flushProgress();
      key = k;
      last = 0;
    }
    const line = `${k}: ${p.done} ${PROGRESS_NOUN[p.step] ?? 'objects'}`;
    const now = Date.now();
    const printed = now - last >= 250;
    if (printed) {
      last = now;
      progress(line);
    }
    pendingProgress = { line, printed };
  };
}

export function endProgress(): void {
  flushProgress();
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
}

/** Prints an error (as JSON when asked) and returns the exit code to use. */
export function reportError(err: unknown, json = false): number {
  const e: IdsyncError = fromFileSystemFailure(err) ?? toIdsyncError(err);
  if (json) {
    process.stdout.write(JSON.stringify({ error: e.toJSON() }, null, 2) + '\n');
  } else {
    // Our messages may span lines (a list of configuration problems); escapes in them are neutralised.
    process.stderr.write(`error [${e.code}]: ${escapeControl(e.message, true)}\n`);
    if (e.hint) process.stderr.write(`  fix: ${escapeControl(e.hint)}\n`);
  }
  return exitCodeFor(e.code);
}

export function table(rows: Record<string, unknown>[], columns: string[]): string {
  const cell = (v: unknown) => (v === undefined || v === null ? '' : escapeControl(String(v)));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join('\n');
}
