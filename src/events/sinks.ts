/**
 * Where events go besides the database: a JSON-lines file (for log shippers) and the system log
 * (journald or syslog). Both are optional; the database is always written first.
 *
 * System log, the choice and why:
 * - Under systemd (the way `idsync serve` runs in production), the simplest robust path is to write
 *   one line per event to stderr with the sd-daemon priority prefix `<N>`: journald reads the prefix
 *   (SyslogLevelPrefix=yes is the default), so `journalctl -u idsync -p err` works, with no socket,
 *   no child process and nothing that can block or fail. Node cannot open the unix *datagram* socket
 *   behind /dev/log or journald's native protocol, so structured journal fields are out of reach
 *   without a native module; the event ID and name lead the line instead, so they stay greppable.
 * - Elsewhere (a plain syslog host), `logger` (util-linux) is started ONCE and fed lines on stdin
 *   with `--prio-prefix`, so each line keeps its own priority. Spawning `logger` per event would
 *   cost a process per event; if `logger` is missing or dies, the sink turns itself off.
 * - `auto` picks journald when systemd started us (JOURNAL_STREAM or INVOCATION_ID is set), and
 *   writes nothing otherwise: an interactive `idsync` command must not spam the terminal.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { makeDirectory } from '../core/fs-errors.js';
import type { EventLevel } from './catalog.js';
import type { EventRecord, EventSink } from './log.js';

/** syslog severities (RFC 5424): err 3, warning 4, info 6. */
export const SYSLOG_SEVERITY: Record<EventLevel, number> = { Error: 3, Warning: 4, Information: 6 };

/** One line, no line breaks (journald and syslog split on them): `idsync[115] NAME: message`. */
export function formatSyslogLine(r: EventRecord): string {
  const oneLine = (s: string) => s.replace(/[\r\n]+/g, ' ');
  const fix = r.level === 'Information' ? '' : ` Fix: ${oneLine(r.resolution)}`;
  return `<${SYSLOG_SEVERITY[r.level]}>event ${r.id} ${r.name} (${r.source}): ${oneLine(r.message)}${fix}`;
}

/**
 * Appends one JSON object per line. Each write opens, appends and closes the file (O_APPEND), so
 * logrotate can move the file away at any time without copytruncate, and lines from several idsync
 * processes never interleave mid-line. Events are few (a heartbeat every 30 minutes, a batch of
 * password changes every 2), so the extra open per event costs nothing that matters.
 */
export class JsonLinesFileSink implements EventSink {
  readonly file: string;

  constructor(file: string) {
    this.file = path.resolve(file);
    makeDirectory(path.dirname(this.file), 'cannot create the folder of events.jsonFile');
  }

  write(record: EventRecord): void {
    appendFileSync(this.file, JSON.stringify(record) + '\n', { mode: 0o600 });
  }
}

/** journald via stderr with `<N>` priority prefixes (see the comment at the top). */
export class JournaldSink implements EventSink {
  readonly #write: (line: string) => void;

  constructor(write: (line: string) => void = (line) => void process.stderr.write(line)) {
    this.#write = write;
  }

  write(record: EventRecord): void {
    this.#write(formatSyslogLine(record) + '\n');
  }
}

export interface LoggerSinkOptions {
  /** syslog tag (default "idsync"). */
  tag?: string;
  /** The program and its arguments (default: `logger -t <tag> --prio-prefix`). For tests. */
  command?: string;
  args?: string[];
}

/** syslog via one long-lived `logger` process (see the comment at the top). */
export class LoggerSink implements EventSink {
  #child: ChildProcess | undefined;

  constructor(options: LoggerSinkOptions = {}) {
    const tag = options.tag ?? 'idsync';
    const child = spawn(options.command ?? 'logger', options.args ?? ['-t', tag, '--prio-prefix'], {
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    const off = () => {
      if (this.#child === child) this.#child = undefined;
    };
    child.on('error', off); // ENOENT: no logger on this host
    child.on('exit', off);
    child.stdin?.on('error', off); // EPIPE after the child died
    // The sink must never keep the process alive by itself.
    child.unref();
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    this.#child = child;
  }

  /** False once `logger` is missing or has exited. */
  get active(): boolean {
    return this.#child !== undefined;
  }

  write(record: EventRecord): void {
    this.#child?.stdin?.write(formatSyslogLine(record) + '\n');
  }

  close(): void {
    const child = this.#child;
    this.#child = undefined;
    child?.stdin?.end();
  }
}

export type SystemLogMode = 'auto' | 'journald' | 'syslog' | 'off';

export interface EventSinkOptions {
  /** Append every event as a JSON line to this file. */
  jsonFile?: string;
  /** System log: `auto` (default) = journald under systemd, nothing otherwise. */
  systemLog?: SystemLogMode;
  /** syslog tag for `syslog` mode. */
  tag?: string;
  /** Environment to detect systemd from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** True when systemd started this process (its stdout/stderr then usually go to the journal). */
export function underSystemd(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.JOURNAL_STREAM || env.INVOCATION_ID);
}

/** The sinks a configuration asks for; the lead wires this to the `events:` config section. */
export function createEventSinks(options: EventSinkOptions = {}): EventSink[] {
  const sinks: EventSink[] = [];
  if (options.jsonFile) sinks.push(new JsonLinesFileSink(options.jsonFile));
  const mode = options.systemLog ?? 'auto';
  if (mode === 'journald' || (mode === 'auto' && underSystemd(options.env))) sinks.push(new JournaldSink());
  else if (mode === 'syslog') sinks.push(new LoggerSink({ tag: options.tag ?? 'idsync' }));
  return sinks;
}
