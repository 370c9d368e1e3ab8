/**
 * The console's attribute index: an asynchronous projection of the metaverse, kept by this module
 * in application code, off the sync's write path (issue 14; it replaced console/001's triggers).
 *
 * One row per (attribute, lower-cased value cut at 200 characters, object) of the attributes an
 * administrator looks objects up by (`console.indexedAttributes`). The projection follows the
 * engine's metaverse by (updated_at, id) (EngineQueries.walkMetaverseChanges) from its position, in
 * batches of one transaction each; `idsync serve` catches it up after each cycle and on a timer.
 *
 * How far it is: `watermark()` — every object whose updated_at is before it is indexed as it is now.
 * The one assumption: a write commits within OVERLAP_MS of the time it writes in updated_at (the
 * engine takes the time just before each short transaction). A pass started at time S reads every
 * object changed at or after the watermark, to the end; then it moves the watermark to S minus
 * OVERLAP_MS: a write with an older time had committed by S, so this pass (or one before it) read
 * it. A write committed a little late with an older time (another process, a clock step) is thus
 * still picked up by the next pass. A search reads the index for objects older than the watermark
 * and checks the newer ones one by one (search.ts), so its answers are never stale.
 *
 * Objects the engine deletes leave rows behind until a sweep (a chunk per pass) removes them;
 * a search checks every index hit against the object itself, so such a row never shows.
 */
import type { Database } from '../store/database.js';
import { EngineQueries, type MetaverseChangeKey } from '../engine/queries.js';
import { parseJsonAttrs } from './attrs.js';

/** Longer values are indexed by their first 200 characters; a search checks the full value. */
export const INDEXED_VALUE_CHARS = 200;

/**
 * The attributes indexed unless `console.indexedAttributes` says otherwise: those an administrator
 * looks people and groups up by. Any other attribute is still searchable, by a bounded walk.
 */
export const DEFAULT_INDEXED_ATTRIBUTES = ['accountName', 'userName', 'mail', 'displayName', 'externalId', 'userPrincipalName', 'sAMAccountName', 'uid', 'cn', 'employeeId', 'proxyAddresses', 'emails'] as const;

/** How long after the time it writes in updated_at a write may commit (see above). */
export const OVERLAP_MS = 2000;
const BATCH = 1000;
const SWEEP = 2000;

/** An object's values of `attr` (names compared case-insensitively), lower-cased: what the index holds and a search compares. */
export function valuesOf(attrs: Record<string, unknown>, attr: string): string[] {
  const lc = attr.toLowerCase();
  const out: string[] = [];
  for (const [k, v] of Object.entries(attrs)) {
    if (k.toLowerCase() !== lc) continue;
    for (const x of Array.isArray(v) ? v : [v]) if (typeof x === 'string' || typeof x === 'number') out.push(String(x).toLowerCase());
  }
  return out;
}

const minus = (iso: string, ms: number): string => {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? new Date(t - ms).toISOString() : '';
};

interface State {
  attrs: string;
  pos_at: string;
  pos_id: number;
  watermark: string;
  sweep_id: number;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export class AttrIndex {
  readonly attributes: ReadonlySet<string>;
  private readonly engine: EngineQueries;
  /** The pass in progress: when it started, and whether its first batch (from the watermark) is done. */
  private pass: { startedAt: number; first: boolean } | undefined;

  constructor(
    private readonly db: Database,
    attributes: readonly string[] = DEFAULT_INDEXED_ATTRIBUTES,
    /** The clock the engine writes updated_at with (tests give theirs). */
    private readonly now: () => number = Date.now,
  ) {
    this.attributes = new Set(attributes.map((a) => a.toLowerCase()));
    this.engine = new EngineQueries(db);
    const signature = [...this.attributes].sort().join(',');
    const state = this.state();
    // Another list of attributes (the configuration changed): start again from nothing.
    if (!state || state.attrs !== signature) {
      db.transaction(() => {
        db.prepare('DELETE FROM console_attr_index').run();
        db.prepare(
          `INSERT INTO console_attr_index_state (id, attrs, pos_at, pos_id, watermark, sweep_id) VALUES (1, ?, '', 0, '', 0)
           ON CONFLICT (id) DO UPDATE SET attrs = excluded.attrs, pos_at = '', pos_id = 0, watermark = '', sweep_id = 0`,
        ).run(signature);
      })();
    }
  }

  private state(): State | undefined {
    return this.db.prepare<[], State>('SELECT attrs, pos_at, pos_id, watermark, sweep_id FROM console_attr_index_state WHERE id = 1').get();
  }

  indexes(attr: string): boolean {
    return this.attributes.has(attr.toLowerCase());
  }

  /** Objects updated before this time are indexed as they are now; '' before the first catch-up. */
  watermark(): string {
    return this.state()?.watermark ?? '';
  }

  /** The (attribute, value) rows of one object's attributes. */
  private pairs(attrsJson: string): [string, string][] {
    const attrs = parseJsonAttrs(attrsJson);
    const out: [string, string][] = [];
    for (const [k, v] of Object.entries(attrs)) {
      const lc = k.toLowerCase();
      if (!this.attributes.has(lc)) continue;
      for (const x of Array.isArray(v) ? v : [v]) {
        if (typeof x !== 'string' && typeof x !== 'number') continue;
        const value = String(x).toLowerCase().slice(0, INDEXED_VALUE_CHARS);
        if (value !== '') out.push([lc, value]);
      }
    }
    return out;
  }

  /**
   * One batch of a pass: projects up to `batch` changed objects (one transaction). True when the
   * pass has reached the end (the index has caught up); then it also sweeps one chunk of deleted objects.
   */
  step(batch = BATCH): boolean {
    this.pass ??= { startedAt: this.now(), first: true };
    const n = this.project(this.pass.first, batch);
    this.pass.first = false;
    if (n === batch) return false;
    this.sweep();
    const done = minus(iso(this.pass.startedAt), OVERLAP_MS);
    this.db.prepare('UPDATE console_attr_index_state SET watermark = ? WHERE id = 1 AND watermark < ?').run(done, done);
    this.pass = undefined;
    return true;
  }

  private project(fromWatermark: boolean, batch: number): number {
    const s = this.state()!;
    // A pass starts at the watermark; its next batches go on from where the last one ended.
    const from: MetaverseChangeKey = fromWatermark ? [s.watermark, -1] : [s.pos_at, s.pos_id];
    const chunk = this.engine.walkMetaverseChanges(from[0], from, batch, null);
    const drop = this.db.prepare('DELETE FROM console_attr_index WHERE mv_id = ?');
    const add = this.db.prepare('INSERT INTO console_attr_index (attr, value, mv_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING');
    const move = this.db.prepare('UPDATE console_attr_index_state SET pos_at = ?, pos_id = ? WHERE id = 1');
    this.db.transaction(() => {
      for (const r of chunk.rows) {
        drop.run(r.id);
        for (const [a, v] of this.pairs(r.attrs)) add.run(a, v, r.id);
      }
      const last = chunk.rows[chunk.rows.length - 1];
      if (last) move.run(last.updated_at, last.id);
    })();
    return chunk.rows.length;
  }

  /** Removes the rows of one chunk of objects the engine no longer has, going round the index. */
  private sweep(): void {
    const s = this.state()!;
    const ids = this.db.prepare<[number, number], { mv_id: number }>('SELECT DISTINCT mv_id FROM console_attr_index WHERE mv_id > ? ORDER BY mv_id LIMIT ?').all(s.sweep_id, SWEEP).map((r) => r.mv_id);
    const present = this.engine.metaverseIdsPresent(ids);
    const drop = this.db.prepare('DELETE FROM console_attr_index WHERE mv_id = ?');
    this.db.transaction(() => {
      for (const id of ids) if (!present.has(id)) drop.run(id);
      this.db.prepare('UPDATE console_attr_index_state SET sweep_id = ? WHERE id = 1').run(ids.length < SWEEP ? 0 : ids[ids.length - 1]!);
    })();
  }

  /**
   * Catches up with every change written so far, a batch at a time, yielding to the event loop
   * between batches so requests (and a cycle) go on. One catch-up at a time: a second call joins it.
   */
  catchUp(): Promise<void> {
    if (this.running) return this.running;
    const run = (async () => {
      while (!this.step() && !this.closed) await new Promise((r) => setImmediate(r));
    })();
    this.running = run;
    const done = () => {
      if (this.running === run) this.running = undefined;
    };
    run.then(done, done);
    return run;
  }

  /**
   * One chunk of the index for a search, after (value, mv id) in that order: equals reads one value,
   * starts with a range of values, present every value of the attribute. Values are cut at 200
   * characters, so the caller checks each object's full values.
   */
  range(attr: string, op: 'eq' | 'sw' | 'pr', value: string, after: [string, number], limit: number): { value: string; mv_id: number }[] {
    const a = attr.toLowerCase();
    const cut = op === 'pr' ? '' : value.slice(0, INDEXED_VALUE_CHARS);
    if (op === 'eq') {
      return this.db
        .prepare<[string, string, number, number], { value: string; mv_id: number }>('SELECT value, mv_id FROM console_attr_index WHERE attr = ? AND value = ? AND mv_id > ? ORDER BY mv_id LIMIT ?')
        .all(a, cut, after[0] === cut ? after[1] : -1, limit);
    }
    // Every string that starts with `cut` sorts below cut + the highest code point.
    return this.db
      .prepare<[string, string, string, string, number, number], { value: string; mv_id: number }>(
        'SELECT value, mv_id FROM console_attr_index WHERE attr = ? AND value >= ? AND value < ? AND (value, mv_id) > (?, ?) ORDER BY value, mv_id LIMIT ?',
      )
      .all(a, cut, `${cut}\u{10FFFF}`, after[0], after[1], limit);
  }

  private running: Promise<void> | undefined;
  private closed = false;

  /** Stops a catch-up in flight after its current batch. */
  close(): void {
    this.closed = true;
  }
}
