/**
 * The persistent event log: the incumbent's Application log, done right. Every event goes to the
 * `events` table of the main database (idsync.db), so `idsync events`, `idsync doctor` and the
 * health checks read one durable history, and optionally to sinks (JSON lines file, journald/syslog).
 *
 * Details are scrubbed of secrets before anything is stored or sent (redact.ts). The message is
 * rendered once, at emit time, from the catalog template and the scrubbed details; the resolution is
 * rendered at read time from the current catalog, so improved advice reaches old events too.
 */
import { IdsyncError } from '../core/errors.js';
import { migrate, type Database, type Migration } from '../store/database.js';
import { outsideFence } from '../store/fence.js';
import { eventById, type EventDefinition, type EventLevel, type EventSource } from './catalog.js';
import { redactDetails, redactString } from './redact.js';

export const eventMigrations: Migration[] = [
  {
    id: 'events/001',
    sql: `
      CREATE TABLE events (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        id      INTEGER NOT NULL,
        name    TEXT    NOT NULL,
        source  TEXT    NOT NULL,
        level   TEXT    NOT NULL CHECK (level IN ('Error', 'Warning', 'Information')),
        time    TEXT    NOT NULL,
        message TEXT    NOT NULL,
        details TEXT    NOT NULL DEFAULT '{}'
      );
      CREATE INDEX events_time ON events (time);
      CREATE INDEX events_id_seq ON events (id, seq);
    `,
  },
];

/** How long events are kept by default (the service prunes daily). */
export const DEFAULT_RETENTION_DAYS = 30;

export interface EventRecord {
  /** Position in the log; increases with every event (use it to follow: `afterSeq`). */
  seq: number;
  id: number;
  name: string;
  source: EventSource;
  level: EventLevel;
  /** ISO 8601, UTC. */
  time: string;
  message: string;
  details: Record<string, unknown>;
  resolution: string;
}

export interface EventSink {
  /** Must not throw for long: a sink failure never fails the emitter (errors are counted and dropped). */
  write(record: EventRecord): void;
  close?(): void;
}

export interface EventQuery {
  level?: EventLevel | EventLevel[];
  ids?: number[];
  source?: EventSource | EventSource[];
  since?: Date;
  /** Only events after this position, oldest first: the first `limit` of them (for following). */
  afterSeq?: number;
  /**
   * At most this many (default 1000). Without `afterSeq`, the NEWEST `limit` events are returned.
   * Results are always in log order (oldest first).
   */
  limit?: number;
}

export interface EventLogOptions {
  sinks?: EventSink[];
  /** Clock, for tests. */
  now?: () => Date;
}

/** A stored event: details as JSON text; the resolution comes from the catalog when read. */
type Row = Omit<EventRecord, 'details' | 'resolution'> & { details: string };

const DEFAULT_LIMIT = 1000;
const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Fills `{name}` placeholders from details; a missing detail leaves the placeholder as written. */
export function renderTemplate(template: string, details: Record<string, unknown>): string {
  return template.replace(PLACEHOLDER, (whole, key: string) => {
    const v = details[key];
    if (v === undefined || v === null) return whole;
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    if (typeof v === 'object' && 'message' in v && typeof (v as { message: unknown }).message === 'string') {
      return (v as { message: string }).message;
    }
    return JSON.stringify(v);
  });
}

/** An event's details scrubbed of secrets and its message rendered from them, as the log keeps them. */
function rendered(def: EventDefinition, details: Record<string, unknown> | undefined): { clean: Record<string, unknown>; message: string } {
  const clean = redactDetails(details);
  return { clean, message: redactString(renderTemplate(def.message, clean)) };
}

export class EventLog {
  readonly #db: Database;
  readonly #sinks: EventSink[];
  readonly #now: () => Date;
  readonly #insert;
  #sinkErrors = 0;

  constructor(db: Database, options: EventLogOptions = {}) {
    this.#db = db;
    this.#sinks = options.sinks ?? [];
    this.#now = options.now ?? (() => new Date());
    // Idempotent: the main database applies these too (app/migrations.ts); applying them here as
    // well lets an EventLog work on any database handed to it.
    migrate(db, eventMigrations);
    this.#insert = db.prepare(
      'INSERT INTO events (id, name, source, level, time, message, details) VALUES (@id, @name, @source, @level, @time, @message, @details)',
    );
  }

  /** Sink writes that threw since this log was opened. */
  get sinkErrors(): number {
    return this.#sinkErrors;
  }

  /** Records an event: scrubs the details, renders the message, stores it, then hands it to the sinks. */
  emit(def: EventDefinition, details?: Record<string, unknown>): EventRecord {
    const { clean, message } = rendered(def, details);
    const time = this.#now().toISOString();
    let seq: number;
    try {
      const info = this.#insert.run({
        id: def.id,
        name: def.name,
        source: def.source,
        level: def.level,
        time,
        message,
        details: JSON.stringify(clean),
      });
      seq = Number(info.lastInsertRowid);
    } catch (err) {
      // The fence refused it (a deposed leader's work): the caller must see that, not a disk error.
      if (err instanceof IdsyncError && err.code === 'LEASE_LOST') throw err;
      throw new IdsyncError('STORE_FAILED', `cannot record event ${def.id} ${def.name}: ${(err as Error).message}`, {
        // The store's own advice where it has one (PostgreSQL: is it running, the password).
        hint: (err instanceof IdsyncError ? err.hint : undefined) ?? 'Check that the data directory is writable and the disk is not full.',
        details: { event: def.id },
        cause: err,
      });
    }
    const record: EventRecord = {
      seq,
      id: def.id,
      name: def.name,
      source: def.source,
      level: def.level,
      time,
      message,
      details: clean,
      resolution: renderTemplate(def.resolution, clean),
    };
    for (const sink of this.#sinks) {
      try {
        sink.write(record);
      } catch {
        this.#sinkErrors++;
      }
    }
    return record;
  }

  /**
   * A report about work that failed or stopped (a lost lease, an unreachable store), made where a
   * throw would be a second failure (a loop, a timer, a shutdown): written outside any write
   * fence, so that a deposed leader can still say why its work stopped, and never thrown; when it
   * cannot be written (the store is what failed), `fallback` gets its message.
   */
  tryEmit(def: EventDefinition, details: Record<string, unknown>, fallback: (msg: string) => void): EventRecord | undefined {
    try {
      return outsideFence(() => this.emit(def, details));
    } catch (err) {
      const { clean, message } = rendered(def, details);
      const code = typeof clean.code === 'string' ? ` (${clean.code})` : '';
      fallback(`event ${def.id} ${def.name}${code}: ${message}; not recorded in the event log: ${(err as Error).message}`);
      return undefined;
    }
  }

  query(q: EventQuery = {}): EventRecord[] {
    const where: string[] = [];
    const params: unknown[] = [];
    const inList = (column: string, values: readonly unknown[]) => {
      where.push(`${column} IN (${values.map(() => '?').join(', ')})`);
      params.push(...values);
    };
    const levels = q.level === undefined ? [] : Array.isArray(q.level) ? q.level : [q.level];
    if (levels.length) inList('level', levels);
    if (q.ids?.length) inList('id', q.ids);
    const sources = q.source === undefined ? [] : Array.isArray(q.source) ? q.source : [q.source];
    if (sources.length) inList('source', sources);
    if (q.since) {
      where.push('time >= ?');
      params.push(q.since.toISOString());
    }
    if (q.afterSeq !== undefined) {
      where.push('seq > ?');
      params.push(q.afterSeq);
    }
    const limit = Math.max(1, Math.floor(q.limit ?? DEFAULT_LIMIT));
    const filter = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const order = q.afterSeq !== undefined ? 'ASC' : 'DESC';
    const rows = this.#db.prepare(`SELECT * FROM events ${filter} ORDER BY seq ${order} LIMIT ?`).all(...params, limit) as Row[];
    if (order === 'DESC') rows.reverse();
    return rows.map(toRecord);
  }

  /** The most recent event of this kind (health checks: "a heartbeat within 3 hours?"). */
  latest(def: EventDefinition): EventRecord | undefined {
    const row = this.#db.prepare('SELECT * FROM events WHERE id = ? ORDER BY seq DESC LIMIT 1').get(def.id) as Row | undefined;
    return row ? toRecord(row) : undefined;
  }

  /** The position of the newest event (0 when empty): where a follower starts. */
  lastSeq(): number {
    return (this.#db.prepare('SELECT COALESCE(MAX(seq), 0) FROM events').pluck().get() as number) ?? 0;
  }

  /** Deletes events older than `olderThanDays` days; returns how many. */
  prune(olderThanDays = DEFAULT_RETENTION_DAYS): number {
    if (!(olderThanDays >= 0)) throw new IdsyncError('CONFIG_INVALID', `event retention must be 0 days or more, not ${olderThanDays}`);
    const cutoff = new Date(this.#now().getTime() - olderThanDays * 86_400_000).toISOString();
    return this.#db.prepare('DELETE FROM events WHERE time < ?').run(cutoff).changes;
  }

  /** Closes the sinks (not the database, which the caller owns). */
  close(): void {
    for (const sink of this.#sinks) {
      try {
        sink.close?.();
      } catch {
        this.#sinkErrors++;
      }
    }
  }
}

function toRecord(row: Row): EventRecord {
  let details: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(row.details);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) details = parsed as Record<string, unknown>;
  } catch {
    // a row written by hand or a broken tool: show it without details
  }
  const def = eventById(row.id);
  return {
    seq: row.seq,
    id: row.id,
    name: row.name,
    source: row.source,
    level: row.level,
    time: row.time,
    message: row.message,
    details,
    resolution: def ? renderTemplate(def.resolution, details) : '',
  };
}
