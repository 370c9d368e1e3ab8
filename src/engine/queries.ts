/**
 * Read-only queries on the engine's tables for readers outside the engine (the console's search,
 * lineage and attribute index). The engine owns mv_objects, cs_objects and export_objects; this
 * module owns every SQL statement other modules need on them, so their schema can change (or move
 * to another store) in one place. Nothing here writes.
 *
 * Walks are bounded: a chunk examines at most `size` objects in key order, whatever matches, so a
 * caller can stop at a time budget between chunks. The optional `like` pattern (likePattern) is a
 * cheap pre-filter on the attributes' JSON text done by the store; the caller checks each candidate
 * against its parsed attributes. The SQL keeps to what SQLite and PostgreSQL share (row values,
 * LIMIT/OFFSET, lower, LIKE ... ESCAPE).
 */
import { dialectOf, type Database } from '../store/database.js';

export interface MetaverseRow {
  id: number;
  object_type: string;
  source_anchor: string;
  attrs: string;
  deleted: number;
  pending_export: number;
  updated_at: string;
}

export interface ConnectorSpaceRow {
  connector: string;
  anchor: string;
  object_type: string;
  dn: string;
  attrs: string;
  mv_id: number | null;
  pending: string | null;
}

export interface ExportRow {
  cloud_id: string | null;
  object_type: string;
  last_error: string | null;
  updated_at: string;
}

/** One chunk of a walk: the candidates in it, how many objects it examined, and where it ended (null: the end of the walk). */
export interface Chunk<K, R> {
  rows: R[];
  examined: number;
  last: K | null;
}

export type MetaverseChangeKey = [updatedAt: string, id: number];
export type ConnectorSpaceKey = [connector: string, anchor: string];

const BY_ID = 100;
const MV_COLUMNS = 'id, object_type, source_anchor, attrs, deleted, pending_export, updated_at';
const CS_COLUMNS = 'connector, anchor, object_type, dn, attrs, mv_id, pending';

/**
 * A LIKE pattern that matches the JSON text of attributes holding `lowerValue` (already lower
 * case), or null when the text cannot be matched that way: JSON escapes quotes, backslashes and
 * control characters, and the store's lower() folds ASCII only.
 */
export function likePattern(lowerValue: string): string | null {
  if (!/^[\x20-\x7e]*$/.test(lowerValue) || /["\\]/.test(lowerValue)) return null;
  return `%${lowerValue.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * The pre-filter on the attributes' JSON text, for a lower-case ASCII pattern (likePattern). SQLite's
 * LIKE already folds ASCII case, as its lower() does, so lower() there only copied every row's text
 * (a third of a walk's CPU on 1M objects); PostgreSQL's LIKE is case-sensitive.
 */
const likeOf = (db: Database): string => (dialectOf(db) === 'sqlite' ? "attrs LIKE ? ESCAPE '\\'" : "lower(attrs) LIKE ? ESCAPE '\\'");

export class EngineQueries {
  private readonly like: string;
  private readonly nested: boolean;

  constructor(private readonly db: Database) {
    this.like = likeOf(db);
    this.nested = dialectOf(db) === 'postgres';
  }

  // --- one object ----------------------------------------------------------------------------

  metaverseObject(id: number): MetaverseRow | undefined {
    return this.db.prepare<[number], MetaverseRow>(`SELECT ${MV_COLUMNS} FROM mv_objects WHERE id = ?`).get(id);
  }

  /**
   * Several metaverse objects at once, by id (those that exist): one statement per 100 ids, not one
   * each (on PostgreSQL each statement is a round trip; a page of the index checked 51 objects).
   * The list is padded with -1 (no such id), so the store prepares one statement.
   */
  metaverseObjects(ids: readonly number[]): Map<number, MetaverseRow> {
    const out = new Map<number, MetaverseRow>();
    const stmt = this.db.prepare<number[], MetaverseRow>(`SELECT ${MV_COLUMNS} FROM mv_objects WHERE id IN (${Array.from({ length: BY_ID }, () => '?').join(', ')})`);
    for (let i = 0; i < ids.length; i += BY_ID) {
      const some = ids.slice(i, i + BY_ID);
      for (const r of stmt.all(...some, ...Array.from({ length: BY_ID - some.length }, () => -1))) out.set(r.id, r);
    }
    return out;
  }

  /** The connector-space objects joined to a metaverse object, by connector. */
  connectorObjectsOf(mvId: number): ConnectorSpaceRow[] {
    return this.db.prepare<[number], ConnectorSpaceRow>(`SELECT ${CS_COLUMNS} FROM cs_objects WHERE mv_id = ? ORDER BY connector`).all(mvId);
  }

  /** What was last exported for a metaverse object, and where. */
  exportOf(mvId: number): ExportRow | undefined {
    return this.db.prepare<[number], ExportRow>('SELECT cloud_id, object_type, last_error, updated_at FROM export_objects WHERE mv_id = ?').get(mvId);
  }

  /** Which of these metaverse ids still exist. */
  metaverseIdsPresent(ids: readonly number[]): Set<number> {
    const out = new Set<number>();
    const one = this.db.prepare<[number], { id: number }>('SELECT id FROM mv_objects WHERE id = ?');
    for (const id of ids) if (one.get(id)) out.add(id);
    return out;
  }

  // --- counts --------------------------------------------------------------------------------

  metaverseCount(): number {
    return this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM mv_objects').get()!.n;
  }

  connectorSpaceCount(): number {
    return this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM cs_objects').get()!.n;
  }

  /** Metaverse objects changed at or after `since` (an ISO time as the engine writes updated_at). */
  metaverseChangedCount(since: string): number {
    return this.db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM mv_objects WHERE updated_at >= ?').get(since)!.n;
  }

  // --- walks ---------------------------------------------------------------------------------

  /** The metaverse by id, after `after`. */
  walkMetaverse(after: number, size: number, like: string | null): Chunk<number, MetaverseRow> {
    const c = this.walk<MetaverseRow>('mv_objects', ['id'], MV_COLUMNS, [after], size, like);
    return { ...c, last: c.last ? (c.last[0] as number) : null };
  }

  /** How many metaverse objects a walk examined from after `after` up to and including `upTo`. */
  metaverseExamined(after: number, upTo: number): number {
    return this.db.prepare<[number, number], { n: number }>('SELECT count(*) AS n FROM mv_objects WHERE id > ? AND id <= ?').get(after, upTo)!.n;
  }

  /**
   * The metaverse objects changed at or after `since`, in (updated_at, id) order after `after`:
   * what a projection of the metaverse reads to catch up (index engine/007-mv-changed-since).
   */
  walkMetaverseChanges(since: string, after: MetaverseChangeKey, size: number, like: string | null): Chunk<MetaverseChangeKey, MetaverseRow> {
    const from = after[0] < since ? ([since, -1] as MetaverseChangeKey) : after;
    const c = this.walk<MetaverseRow>('mv_objects', ['updated_at', 'id'], MV_COLUMNS, from, size, like);
    return { ...c, last: c.last as MetaverseChangeKey | null };
  }

  metaverseChangesExamined(since: string, after: MetaverseChangeKey, upTo: MetaverseChangeKey): number {
    const from = after[0] < since ? ([since, -1] as MetaverseChangeKey) : after;
    return this.db.prepare<[string, number, string, number], { n: number }>('SELECT count(*) AS n FROM mv_objects WHERE (updated_at, id) > (?, ?) AND (updated_at, id) <= (?, ?)').get(from[0], from[1], upTo[0], upTo[1])!.n;
  }

  /** Every connector space, by (connector, anchor), after `after`. */
  walkConnectorSpace(after: ConnectorSpaceKey, size: number, like: string | null): Chunk<ConnectorSpaceKey, ConnectorSpaceRow> {
    const c = this.walk<ConnectorSpaceRow>('cs_objects', ['connector', 'anchor'], CS_COLUMNS, after, size, like);
    return { ...c, last: c.last as ConnectorSpaceKey | null };
  }

  /**
   * One chunk of a walk in key order (keys compared as row values, so one walk serves every key):
   * the key `size` rows on, then the rows up to it that `like` lets through; at the end of the table,
   * what is left. The count of the last chunk is taken in key order with a limit (see below).
   *
   * The size is written into the statement, not bound: PostgreSQL plans a prepared statement once
   * for any parameters after a few runs, and with the OFFSET and the range unknown that plan was a
   * scan of the whole table and a sort for every chunk (a 1,000-object chunk cost as much as a
   * 20,000 one). Callers keep to a few sizes, so the store keeps a few statements.
   */
  private walk<R>(table: string, keyColumns: readonly string[], columns: string, after: readonly (string | number)[], size: number, like: string | null): Chunk<(string | number)[], R> {
    const n = Math.max(1, Math.floor(size));
    if (this.nested) return this.walkInOne<R>(table, keyColumns, columns, after, n, like);
    const key = keyColumns.join(', ');
    const marks = keyColumns.map(() => '?').join(', ');
    const likeArgs = like ? [like] : [];
    const filter = like ? ` AND ${this.like}` : '';
    const end = this.db.prepare<unknown[], Record<string, string | number>>(`SELECT ${key} FROM ${table} WHERE (${key}) > (${marks}) ORDER BY ${key} LIMIT 1 OFFSET ${n - 1}`).get(...after);
    if (end) {
      const last = keyColumns.map((k) => end[k]!);
      const rows = this.db.prepare<unknown[], R>(`SELECT ${columns} FROM ${table} WHERE (${key}) > (${marks}) AND (${key}) <= (${marks})${filter} ORDER BY ${key} LIMIT ${n}`).all(...after, ...last, ...likeArgs);
      return { rows, examined: n, last };
    }
    const rows = this.db.prepare<unknown[], R>(`SELECT ${columns} FROM ${table} WHERE (${key}) > (${marks})${filter} ORDER BY ${key} LIMIT ${n}`).all(...after, ...likeArgs);
    const examined = this.db
      .prepare<unknown[], { n: number }>(`SELECT count(*) AS n FROM (SELECT 1 FROM ${table} WHERE (${key}) > (${marks}) ORDER BY ${key} LIMIT ${n}) AS c`)
      .get(...after)!.n;
    return { rows, examined, last: null };
  }

  /**
   * PostgreSQL's chunk, in one statement: each statement is a round trip through the bridge, tens
   * of ms on a busy machine whatever its size, so two per chunk doubled a page's overrun. The range
   * is read in key order with its limit (so the generic plan reads it by the primary key; with the
   * filter beside the range it read the whole connector by another index), numbered, and what
   * comes back is the candidates and the range's last row (its key, and how many were read).
   * SQLite keeps two statements: its windows would copy every row read (+50 % CPU, measured).
   */
  private walkInOne<R>(table: string, keyColumns: readonly string[], columns: string, after: readonly (string | number)[], n: number, like: string | null): Chunk<(string | number)[], R> {
    const key = keyColumns.join(', ');
    const marks = keyColumns.map(() => '?').join(', ');
    const hit = like ? this.like : '1 = 1';
    const rows = this.db
      .prepare<unknown[], Record<string, unknown>>(
        `SELECT * FROM (SELECT ${columns}, CASE WHEN ${hit} THEN 1 ELSE 0 END AS walk_hit, row_number() OVER (ORDER BY ${key}) AS walk_pos, count(*) OVER () AS walk_n
           FROM (SELECT ${columns} FROM ${table} WHERE (${key}) > (${marks}) ORDER BY ${key} LIMIT ${n}) AS r) AS c
         WHERE walk_hit = 1 OR walk_pos = walk_n ORDER BY walk_pos`,
      )
      .all(...(like ? [like] : []), ...after);
    const end = rows[rows.length - 1];
    const examined = end ? Number(end.walk_n) : 0;
    const candidates = rows.filter((r) => Number(r.walk_hit) === 1).map(({ walk_hit: _h, walk_pos: _p, walk_n: _n, ...r }) => r as R);
    return { rows: candidates, examined, last: end && examined === n ? keyColumns.map((k) => end[k] as string | number) : null };
  }

  /**
   * A count over a key range counts in key order with a limit: a plain count(*) lets the store walk
   * a smaller index whole (the mv_id index, 1M entries) instead of the range.
   */
  connectorSpaceExamined(after: ConnectorSpaceKey, upTo: ConnectorSpaceKey, atMost: number): number {
    return this.db
      .prepare<[string, string, string, string], { n: number }>(
        `SELECT count(*) AS n FROM (SELECT 1 FROM cs_objects WHERE (connector, anchor) > (?, ?) AND (connector, anchor) <= (?, ?) ORDER BY connector, anchor LIMIT ${Math.max(1, Math.floor(atMost))}) AS c`,
      )
      .get(after[0], after[1], upTo[0], upTo[1])!.n;
  }
}
