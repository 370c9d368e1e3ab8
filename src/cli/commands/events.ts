/**
 * `idsync events`: read the event log (the incumbent's Application log, with the fix on every
 * error and warning). Filters by level, ID, source and time; follows new events with --follow.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidArgumentError, type Command } from 'commander';
import { ALL_EVENTS, EVENT_LEVELS, EVENT_SOURCES, eventByName, type EventLevel, type EventSource } from '../../events/catalog.js';
import { EventLog, type EventQuery, type EventRecord } from '../../events/log.js';
import { parseSince, SINCE_USAGE } from '../../events/since.js';
import type { Database } from '../../store/database.js';
import { withContext } from '../context.js';
import { escapeControl, printJson, println } from '../output.js';
import { StopSignals } from '../signals.js';

/** How the command gets the database; tests pass their own. */
export type EventsDatabaseOpener = (cmd: Command, fn: (db: Database) => Promise<void>) => Promise<void>;

const openMainDatabase: EventsDatabaseOpener = (cmd, fn) => withContext(cmd, (ctx) => fn(ctx.db), { readOnly: true });

export const FOLLOW_INTERVAL_MS = 500;
const DEFAULT_LIMIT = 50;

// ----- argument parsers (exported for tests); each throws commander's InvalidArgumentError -----

export function parseLevelOption(text: string): EventLevel[] {
  return splitList(text).map((part) => {
    const p = part.toLowerCase();
    const match = EVENT_LEVELS.find((l) => l.toLowerCase() === p || (p.length >= 1 && l.toLowerCase().startsWith(p)));
    if (!match) throw new InvalidArgumentError(`unknown level "${part}": expected ${EVENT_LEVELS.join(', ')} (comma-separated for several).`);
    return match;
  });
}

export function parseIdOption(text: string): number[] {
  return splitList(text).map((part) => {
    if (/^\d{1,9}$/.test(part)) return Number(part);
    const def = eventByName(part);
    if (!def) throw new InvalidArgumentError(`"${part}" is not an event ID or name: expected numbers such as 115,655 or names such as PHS_HEARTBEAT.`);
    return def.id;
  });
}

export function parseSourceOption(text: string): EventSource[] {
  return splitList(text).map((part) => {
    const p = part.toLowerCase();
    const exact = EVENT_SOURCES.find((s) => s.toLowerCase() === p);
    if (exact) return exact;
    const partial = EVENT_SOURCES.filter((s) => s.toLowerCase().includes(p));
    if (partial.length === 1) return partial[0]!;
    throw new InvalidArgumentError(
      `${partial.length ? 'ambiguous' : 'unknown'} source "${part}": expected one of ${EVENT_SOURCES.map((s) => `"${s}"`).join(', ')} (or a unique part, e.g. credentials).`,
    );
  });
}

export function parseSinceOption(text: string): Date {
  const d = parseSince(text);
  if (!d) throw new InvalidArgumentError(`${SINCE_USAGE}.`);
  return d;
}

export function parseLimitOption(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number, 1 or more.');
  return n;
}

function splitList(text: string): string[] {
  const parts = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (parts.length === 0) throw new InvalidArgumentError('expected a value.');
  return parts;
}

// ----- printing -----

const WIDTH = { time: 20, id: 5, level: 11, source: 25 };

function shortTime(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function formatHeader(): string {
  return ['TIME'.padEnd(WIDTH.time), 'ID'.padStart(WIDTH.id), 'LEVEL'.padEnd(WIDTH.level), 'SOURCE'.padEnd(WIDTH.source), 'MESSAGE'].join('  ');
}

/** One event: its row and, for errors and warnings, the fix on the next line. */
export function formatEvent(r: EventRecord): string {
  const row = [shortTime(r.time).padEnd(WIDTH.time), String(r.id).padStart(WIDTH.id), r.level.padEnd(WIDTH.level), r.source.padEnd(WIDTH.source), escapeControl(r.message)].join('  ');
  if (r.level === 'Information' || !r.resolution) return row;
  const indent = ' '.repeat(WIDTH.time + WIDTH.id + 4);
  return `${row}\n${indent}fix: ${escapeControl(r.resolution)}`;
}

interface EventsOptions {
  level?: EventLevel[];
  id?: number[];
  source?: EventSource[];
  since?: Date;
  limit: number;
  json?: boolean;
  follow?: boolean;
}

const HELP_AFTER = `
Events keep the incumbent's IDs (0, 115, 116, 611-657, 6900) so existing runbooks apply; every error
and warning carries its fix. The full catalog is in docs/events.md.

Examples:
  idsync events                          the last ${DEFAULT_LIMIT} events
  idsync events --level Error,Warning    problems only, each with its fix
  idsync events --id 115,0,655,6900      the "credentials changed but sync still fails" signature
  idsync events --id PHS_HEARTBEAT -n 1  the last password hash sync heartbeat
  idsync events --source credentials --since 7d
  idsync events --since 2026-05-01T08:00:00Z --json
  idsync events --follow                 watch new events (Ctrl-C to stop)
  idsync events --follow --json | jq .   JSON lines, one event per line

Known IDs: ${ALL_EVENTS.map((e) => e.id).sort((a, b) => a - b).join(', ')}
`;

export function registerEventsCommands(program: Command, open: EventsDatabaseOpener = openMainDatabase): void {
  program
    .command('events')
    .description('Show the event log (errors and warnings with their fix); follow it with --follow')
    .option('-l, --level <levels>', `only these levels, comma-separated: ${EVENT_LEVELS.join(', ')}`, parseLevelOption)
    .option('-i, --id <ids>', 'only these event IDs or names, comma-separated (e.g. 115,655)', parseIdOption)
    .option('-s, --source <sources>', `only these sources: ${EVENT_SOURCES.map((s) => `"${s}"`).join(', ')} (a unique part is enough)`, parseSourceOption)
    .option('--since <when>', 'only events since a duration ago (30m, 2h, 7d) or an ISO 8601 time', parseSinceOption)
    .option('-n, --limit <n>', 'show at most the newest N events', parseLimitOption, DEFAULT_LIMIT)
    .option('--json', 'machine-readable output: a JSON array (JSON lines with --follow)')
    .option('-f, --follow', `keep printing new events as they are written (polls every ${FOLLOW_INTERVAL_MS} ms) until Ctrl-C`)
    .addHelpText('after', HELP_AFTER)
    .action(async (opts: EventsOptions, cmd: Command) => {
      await open(cmd, async (db) => {
        await runEvents(new EventLog(db), opts);
      });
    });
}

async function runEvents(log: EventLog, opts: EventsOptions): Promise<void> {
  const filters: EventQuery = { level: opts.level, ids: opts.id, source: opts.source, since: opts.since };
  const startSeq = log.lastSeq();
  const initial = log.query({ ...filters, limit: opts.limit });

  if (!opts.follow) {
    if (opts.json) printJson(initial);
    else if (initial.length === 0) println('no events match (see `idsync events --help` for filters)');
    else {
      println(formatHeader());
      for (const r of initial) println(formatEvent(r));
    }
    return;
  }

  const stop = new AbortController();
  // Before the first line is printed (signals.ts).
  const signals = new StopSignals();
  void signals.first.then(() => stop.abort());
  try {
    const print = (r: EventRecord) => println(opts.json ? JSON.stringify(r) : formatEvent(r));
    if (!opts.json) println(formatHeader());
    initial.forEach(print);
    if (process.stderr.isTTY) process.stderr.write('(following new events; Ctrl-C to stop)\n');

    let last = Math.max(startSeq, ...initial.map((r) => r.seq));
    while (!stop.signal.aborted) {
      try {
        await sleep(FOLLOW_INTERVAL_MS, undefined, { signal: stop.signal });
      } catch {
        break; // aborted by the signal
      }
      for (;;) {
        const batch = log.query({ ...filters, afterSeq: last, limit: 1000 });
        batch.forEach(print);
        if (batch.length > 0) last = batch[batch.length - 1]!.seq;
        if (batch.length < 1000) break;
      }
    }
  } finally {
    signals.dispose();
  }
}
