/**
 * The console's search: the metaverse or the connector space by one attribute — equals, starts
 * with (both case-insensitive, multi-valued attributes included) or present — paged, and every page
 * bounded, like a directory server's search:
 *
 *  - On the metaverse, an attribute of the index (attr-index.ts, `console.indexedAttributes`) is
 *    read from the index for the objects it covers (updated before its watermark), then the objects
 *    changed since are checked one by one, so an answer is never stale.
 *  - Any other search walks the objects in key order, in chunks; the store pre-filters a chunk by
 *    the value in the JSON text and each candidate is checked against its parsed attributes.
 *
 * A page stops when it is full, at the end, or when its budget (time, and for tests a count of
 * objects) is spent: then it returns what it found, "searched N of M objects" and a cursor to search
 * further. A page always makes progress (one chunk at least), so searching further always ends.
 */
import { EngineQueries, likePattern, type ConnectorSpaceKey, type ConnectorSpaceRow, type MetaverseChangeKey, type MetaverseRow } from '../engine/queries.js';
import { SECRET_ATTR, WebError } from '../web/security.js';
import type { SearchHit, SearchOperator, SearchResult, SearchSpace } from './api-types.js';
import { display, parseJsonAttrs } from './attrs.js';
import { INDEXED_VALUE_CHARS, valuesOf, type AttrIndex } from './attr-index.js';

export interface SearchQuery {
  space: SearchSpace;
  attr: string;
  op: SearchOperator;
  value: string;
  after?: string;
  limit: number;
}

/** What one page may spend: wall time, and objects checked one by one (tests set this one). */
export interface SearchBudget {
  ms: number;
  rows: number;
}

/**
 * Under the 300 ms a page, with room for the answer, and for what a busy machine adds: on
 * 2 cores at load 10, the process stalls now and then for 100 ms and more between two statements.
 */
export const DEFAULT_SEARCH_BUDGET: SearchBudget = { ms: 150, rows: Number.POSITIVE_INFINITY };
/**
 * A walk's chunks are sized by time, not count: each is sized from the rate the page's previous
 * chunk ran at to take about CHUNK_MS, within these bounds, and a page does not start a chunk that
 * it expects to end after its deadline. A page so ends near its budget however busy the machine
 * (with a fixed 2,000 a page of the connector space took up to 383 ms at load 20, for a 200 ms
 * budget); on a quiet machine chunks grow to amortise their statements.
 */
const FIRST_CHUNK = 1000;
/** Smaller chunks would not be faster where each statement costs more than its rows (PostgreSQL). */
const MIN_CHUNK = FIRST_CHUNK;
const MAX_CHUNK = 20_000;
const CHUNK_MS = 15;
const INDEX_CHUNK = 200;
/** The sizes a chunk takes: few, so that PostgreSQL keeps a few prepared statements (queries.ts). */
const CHUNK_SIZES = [1000, 2000, 5000, 10_000, MAX_CHUNK] as const;
const chunkSize = (rows: number): number => CHUNK_SIZES.findLast((s) => s <= rows) ?? MIN_CHUNK;

/** Checks and normalises the query string of GET /console/api/search; WebError 400 otherwise. */
export function parseSearchQuery(q: Partial<Record<'space' | 'attr' | 'op' | 'value' | 'after' | 'limit', string>>, pageSize: number): SearchQuery {
  const space: SearchSpace | undefined = q.space === 'cs' ? 'cs' : q.space === 'mv' || q.space === undefined ? 'mv' : undefined;
  if (!space) throw new WebError(400, 'BAD_SPACE', 'space must be mv (metaverse) or cs (connector space)');
  const attr = q.attr ?? '';
  if (!/^[A-Za-z][A-Za-z0-9_-]{0,63}$/.test(attr)) throw new WebError(400, 'BAD_ATTRIBUTE', 'attr must be an attribute name (letters, digits, "-" or "_")');
  if (SECRET_ATTR.test(attr)) throw new WebError(400, 'BAD_ATTRIBUTE', `searching by ${attr} is not allowed: it may hold a secret`);
  const op: SearchOperator | undefined = q.op === 'sw' || q.op === 'pr' ? q.op : q.op === 'eq' || q.op === undefined ? 'eq' : undefined;
  if (!op) throw new WebError(400, 'BAD_OPERATOR', 'op must be eq (equals), sw (starts with) or pr (present)');
  const value = op === 'pr' ? '' : (q.value ?? '').toLowerCase();
  if (value === '' && op !== 'pr') throw new WebError(400, 'BAD_VALUE', 'value must not be empty');
  const limit = Math.min(Math.max(Number(q.limit) || pageSize, 1), 500);
  return { space, attr, op, value, ...(q.after ? { after: q.after } : {}), limit };
}

/** The values of the object's attribute that the query matches. */
function matching(attrsJson: string, q: SearchQuery): string[] {
  const vs = valuesOf(parseJsonAttrs(attrsJson), q.attr);
  return q.op === 'eq' ? vs.filter((v) => v === q.value) : q.op === 'sw' ? vs.filter((v) => v.startsWith(q.value)) : vs.filter((v) => v !== '');
}

/** The store's pre-filter for a query: the value, or for present the attribute's name as a JSON key. */
const prefilter = (q: SearchQuery): string | null => (q.op === 'pr' ? likePattern(`"${q.attr.toLowerCase()}"`) : likePattern(q.value));

const mvHit = (r: MetaverseRow): SearchHit => ({ id: r.id, connector: null, anchor: r.source_anchor, dn: null, objectType: r.object_type, display: display(parseJsonAttrs(r.attrs)), deleted: r.deleted === 1 });
const csHit = (r: ConnectorSpaceRow): SearchHit => ({ id: r.mv_id, connector: r.connector, anchor: r.anchor, dn: r.dn, objectType: r.object_type, display: display(parseJsonAttrs(r.attrs)), deleted: r.pending === 'delete' });

// --- cursors ---------------------------------------------------------------------------------

/** Where a search goes on: a walk's key with the objects checked so far (n) of how many (m). */
type Cursor =
  | { p: 'mv'; k: number; n: number; m: number }
  | { p: 'cs'; k: ConnectorSpaceKey; n: number; m: number }
  /** In the index, after (value, mv id); w: the watermark of the first page. */
  | { p: 'ix'; w: string; k: [string, number]; m: number }
  /** Among the objects changed since w. */
  | { p: 'gap'; w: string; k: MetaverseChangeKey; n: number; m: number };

const str = (v: unknown): v is string => typeof v === 'string';
const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
function isCursor(v: unknown): v is Cursor {
  if (!v || typeof v !== 'object') return false;
  const c = v as Record<string, unknown>;
  const k = c.k;
  const pair = (a: (x: unknown) => boolean, b: (x: unknown) => boolean) => Array.isArray(k) && k.length === 2 && a(k[0]) && b(k[1]);
  if (!num(c.m)) return false;
  if (c.p === 'mv') return num(k) && num(c.n);
  if (c.p === 'cs') return pair(str, str) && num(c.n);
  if (c.p === 'ix') return str(c.w) && pair(str, num);
  if (c.p === 'gap') return str(c.w) && pair(str, num) && num(c.n);
  return false;
}
const encode = (c: Cursor): string => Buffer.from(JSON.stringify(c)).toString('base64url');
function decode(after: string): Cursor {
  try {
    const v = JSON.parse(Buffer.from(after, 'base64url').toString('utf8')) as unknown;
    if (isCursor(v)) return v;
  } catch {
    /* below */
  }
  throw new WebError(400, 'BAD_CURSOR', 'after must be the `next` of the previous page of the same search');
}

// --- walking ---------------------------------------------------------------------------------

interface Spend {
  deadline: number;
  rowsLeft: number;
  chunks: number;
  /** How long the last chunk took: the next one is expected to take about as long. */
  lastMs: number;
  clock: () => number;
}
/**
 * Whether the page may read another chunk: always its first, then while the budget lasts, including
 * the next chunk's expected time (on PostgreSQL a chunk's statement goes through the bridge, tens
 * of ms on a busy machine whatever its size: a page stops before it, not after).
 */
const mayGoOn = (s: Spend): boolean => s.chunks === 0 || (s.clock() + s.lastMs < s.deadline && s.rowsLeft > 0);

interface Found<K> {
  hit: SearchHit;
  key: K;
  /** Objects checked up to and including this one (counted only when a page ends here). */
  n: () => number;
}
interface WalkEnd<K> {
  found: Found<K>[];
  /** Where the walk stopped for its budget (null: it reached its end, or found `want`). */
  resume: { key: K; n: number } | null;
}

/**
 * Walks in chunks from `start` (n0 objects checked before it) until `want` hits, the end, or the
 * budget. `chunk` reads one chunk; `between` counts the objects from after `from` up to `to`.
 */
function walk<K, R>(
  start: K,
  n0: number,
  want: number,
  spend: Spend,
  chunk: (after: K, size: number) => { rows: R[]; examined: number; last: K | null },
  between: (from: K, to: K) => number,
  keyOf: (r: R) => K,
  test: (r: R) => SearchHit | null,
): WalkEnd<K> {
  const found: Found<K>[] = [];
  let after = start;
  let n = n0;
  let size = FIRST_CHUNK;
  for (;;) {
    if (!mayGoOn(spend)) return { found, resume: { key: after, n } };
    // A chunk never reads past the count budget (tests use it to cut pages anywhere).
    const t0 = spend.clock();
    const c = chunk(after, Math.max(1, Math.min(size, spend.rowsLeft)));
    const took = spend.clock() - t0;
    spend.lastMs = took;
    spend.chunks++;
    spend.rowsLeft -= c.examined;
    const perMs = c.examined / Math.max(took, 0.5);
    const left = Math.max(spend.deadline - spend.clock(), 0);
    size = chunkSize(perMs * Math.min(CHUNK_MS, left));
    const from = after;
    const before = n;
    for (const r of c.rows) {
      const hit = test(r);
      if (!hit) continue;
      const key = keyOf(r);
      found.push({ hit, key, n: () => before + between(from, key) });
      if (found.length === want) return { found, resume: null };
    }
    n += c.examined;
    if (c.last === null) return { found, resume: null };
    after = c.last;
  }
}

/**
 * Runs one page. `found` are the hits in order, each with the cursor that goes on after it; the
 * page is the first `limit`, and one more found tells that there is a next page.
 */
function page(q: SearchQuery, method: 'index' | 'scan', total: number, found: { hit: SearchHit; after: () => Cursor }[], resume: Cursor | null, scannedAtEnd: number): SearchResult {
  if (found.length > q.limit) {
    const next = found[q.limit - 1]!.after();
    const scanned = 'n' in next ? next.n : 0;
    return { space: q.space, objects: found.slice(0, q.limit).map((f) => f.hit), next: encode(next), method, scanned, total: Math.max(total, scanned), partial: false };
  }
  // At the end everything was searched; a kept total may be a little behind the objects walked:
  // never "searched 1,001 of 1,000".
  const scanned = resume && 'n' in resume ? resume.n : scannedAtEnd;
  return { space: q.space, objects: found.map((f) => f.hit), next: resume ? encode(resume) : null, method, scanned, total: Math.max(total, scanned), partial: resume !== null };
}

/**
 * How many objects each space holds, for "searched N of M": a count(*) of 1M rows costs a good part
 * of a page's budget, so it is kept for a while and counted again after the answer that found it
 * stale (that answer uses the old figure).
 */
export class SpaceTotals {
  private readonly cached = new Map<SearchSpace, { n: number; at: number }>();
  private readonly refreshing = new Set<SearchSpace>();

  constructor(
    private readonly engine: EngineQueries,
    private readonly maxAgeMs = 120_000,
    private readonly clock: () => number = Date.now,
  ) {}

  private count(space: SearchSpace): number {
    const n = space === 'mv' ? this.engine.metaverseCount() : this.engine.connectorSpaceCount();
    this.cached.set(space, { n, at: this.clock() });
    return n;
  }

  get(space: SearchSpace): number {
    const c = this.cached.get(space);
    if (!c) return this.count(space);
    if (this.clock() - c.at >= this.maxAgeMs && !this.refreshing.has(space)) {
      this.refreshing.add(space);
      setImmediate(() => {
        this.refreshing.delete(space);
        this.count(space);
      });
    }
    return c.n;
  }
}

export interface SearchOptions {
  budget?: SearchBudget;
  clock?: () => number;
  /** Counts kept between searches (the console's); without it each first page counts. */
  totals?: SpaceTotals;
}

/** One page of a search. `index` answers the metaverse's indexed attributes (null: walk always). */
export function search(engine: EngineQueries, index: AttrIndex | null, q: SearchQuery, options: SearchOptions = {}): SearchResult {
  const budget = options.budget ?? DEFAULT_SEARCH_BUDGET;
  const clock = options.clock ?? (() => performance.now());
  const spend: Spend = { deadline: clock() + budget.ms, rowsLeft: budget.rows, chunks: 0, lastMs: 0, clock };
  const cursor = q.after ? decode(q.after) : undefined;
  const like = prefilter(q);
  const want = q.limit + 1;

  if (q.space === 'cs') {
    if (cursor && cursor.p !== 'cs') throw new WebError(400, 'BAD_CURSOR', 'after belongs to another search');
    const total = cursor?.m ?? options.totals?.get('cs') ?? engine.connectorSpaceCount();
    const r = walk<ConnectorSpaceKey, ConnectorSpaceRow>(
      cursor?.k ?? ['', ''],
      cursor?.n ?? 0,
      want,
      spend,
      (after, size) => engine.walkConnectorSpace(after, size, like),
      (from, to) => engine.connectorSpaceExamined(from, to, MAX_CHUNK),
      (row) => [row.connector, row.anchor],
      (row) => (matching(row.attrs, q).length ? csHit(row) : null),
    );
    const found = r.found.map((f) => ({ hit: f.hit, after: (): Cursor => ({ p: 'cs', k: f.key, n: f.n(), m: total }) }));
    return page(q, 'scan', total, found, r.resume ? { p: 'cs', k: r.resume.key, n: r.resume.n, m: total } : null, total);
  }

  if (!index?.indexes(q.attr) || (cursor && cursor.p === 'mv')) {
    if (cursor && cursor.p !== 'mv') throw new WebError(400, 'BAD_CURSOR', 'after belongs to another search');
    const total = cursor?.m ?? options.totals?.get('mv') ?? engine.metaverseCount();
    const r = walk<number, MetaverseRow>(
      cursor?.k ?? 0,
      cursor?.n ?? 0,
      want,
      spend,
      (after, size) => engine.walkMetaverse(after, size, like),
      (from, to) => engine.metaverseExamined(from, to),
      (row) => row.id,
      (row) => (matching(row.attrs, q).length ? mvHit(row) : null),
    );
    const found = r.found.map((f) => ({ hit: f.hit, after: (): Cursor => ({ p: 'mv', k: f.key, n: f.n(), m: total }) }));
    return page(q, 'scan', total, found, r.resume ? { p: 'mv', k: r.resume.key, n: r.resume.n, m: total } : null, total);
  }

  if (cursor && cursor.p !== 'ix' && cursor.p !== 'gap') throw new WebError(400, 'BAD_CURSOR', 'after belongs to another search');
  // The watermark of the first page holds for the whole search: each object is answered either by
  // the index (updated before it) or by the check of the changed objects (at or after it), once.
  const w = cursor?.w ?? index.watermark();
  const gapTotal = cursor?.m ?? engine.metaverseChangedCount(w);
  const found: { hit: SearchHit; after: () => Cursor }[] = [];
  let resume: Cursor | null = null;

  if (!cursor || cursor.p === 'ix') {
    const r = walk<[string, number], { value: string; mv_id: number; obj: MetaverseRow | undefined }>(
      cursor?.p === 'ix' ? cursor.k : ['', -1],
      0,
      want,
      spend,
      (after) => {
        const rows = index.range(q.attr, q.op, q.value, after, INDEX_CHUNK);
        const last = rows[rows.length - 1];
        // The chunk's objects in one go: what the page checks each index row against.
        const objects = engine.metaverseObjects(rows.map((x) => x.mv_id));
        return { rows: rows.map((x) => ({ ...x, obj: objects.get(x.mv_id) })), examined: 0, last: rows.length === INDEX_CHUNK && last ? [last.value, last.mv_id] : null };
      },
      () => 0,
      (row) => [row.value, row.mv_id],
      (row) => {
        const obj = row.obj;
        if (!obj || obj.updated_at >= w) return null;
        const vs = matching(obj.attrs, q);
        if (!vs.length) return null;
        // An object with several matching values shows once, at the first of them in the index's order.
        if (q.op !== 'eq' && vs.map((v) => v.slice(0, INDEXED_VALUE_CHARS)).sort()[0] !== row.value) return null;
        return mvHit(obj);
      },
    );
    found.push(...r.found.map((f) => ({ hit: f.hit, after: (): Cursor => ({ p: 'ix', w, k: f.key, m: gapTotal }) })));
    if (r.resume) resume = { p: 'ix', w, k: r.resume.key, m: gapTotal };
  }
  if (!resume && found.length < want) {
    const start = cursor?.p === 'gap' ? cursor : undefined;
    const r = walk<MetaverseChangeKey, MetaverseRow>(
      start?.k ?? [w, -1],
      start?.n ?? 0,
      want - found.length,
      spend,
      (after, size) => engine.walkMetaverseChanges(w, after, size, like),
      (from, to) => engine.metaverseChangesExamined(w, from, to),
      (row) => [row.updated_at, row.id],
      (row) => (matching(row.attrs, q).length ? mvHit(row) : null),
    );
    found.push(...r.found.map((f) => ({ hit: f.hit, after: (): Cursor => ({ p: 'gap', w, k: f.key, n: f.n(), m: gapTotal }) })));
    if (r.resume) resume = { p: 'gap', w, k: r.resume.key, n: r.resume.n, m: gapTotal };
  }
  return page(q, 'index', gapTotal, found, resume, gapTotal);
}
