/**
 * The console's search: the metaverse or the connector space by one attribute — equals, starts
 * with (both case-insensitive, multi-valued attributes included) or present — keyset-paged.
 */
import type { Database } from '../store/database.js';
import { WebError } from '../web/security.js';
import type { SearchHit, SearchOperator, SearchResult, SearchSpace } from './api-types.js';
import { SECRET_ATTR } from '../web/security.js';
import { display, parseJsonAttrs } from './attrs.js';
import { INDEXED_ATTRIBUTES, INDEXED_VALUE_CHARS } from './migrations.js';

export interface SearchQuery {
  space: SearchSpace;
  attr: string;
  op: SearchOperator;
  value: string;
  after?: string;
  limit: number;
}

/** Checks and normalises the query string of GET /console/api/search; WebError 400 otherwise. */
export function parseSearchQuery(q: Partial<Record<'space' | 'attr' | 'op' | 'value' | 'after' | 'limit', string>>, pageSize: number): SearchQuery {
  const space: SearchSpace | undefined = q.space === 'cs' ? 'cs' : q.space === 'mv' || q.space === undefined ? 'mv' : undefined;
  if (!space) throw new WebError(400, 'BAD_SPACE', 'space must be mv (metaverse) or cs (connector space)');
  const attr = q.attr ?? '';
  if (!/^[A-Za-z][A-Za-z0-9_-]{0,63}$/.test(attr)) throw new WebError(400, 'BAD_ATTRIBUTE', 'attr must be an attribute name (letters, digits, "-" or "_")');
  if (SECRET_ATTR.test(attr)) throw new WebError(400, 'BAD_ATTRIBUTE', `searching by ${attr} is not allowed: it may hold a secret`);
  const op: SearchOperator | undefined = q.op === 'sw' || q.op === 'pr' ? q.op : q.op === 'eq' || q.op === undefined ? 'eq' : undefined;
  if (!op) throw new WebError(400, 'BAD_OPERATOR', 'op must be eq (equals), sw (starts with) or pr (present)');
  const value = (q.value ?? '').toLowerCase();
  if (value === '' && op !== 'pr') throw new WebError(400, 'BAD_VALUE', 'value must not be empty');
  const limit = Math.min(Math.max(Number(q.limit) || pageSize, 1), 500);
  return { space, attr, op, value, ...(q.after ? { after: q.after } : {}), limit };
}

/** The WHERE part on a json_each row `j` of the attribute, and its arguments. */
function match(op: SearchOperator, value: string): { sql: string; args: string[] } {
  if (op === 'eq') return { sql: 'lower(j.value) = ?', args: [value] };
  if (op === 'sw') return { sql: 'substr(lower(j.value), 1, length(?)) = ?', args: [value, value] };
  return { sql: "j.value IS NOT NULL AND j.value <> ''", args: [] };
}

type MvRow = { id: number; object_type: string; source_anchor: string; attrs: string; deleted: number };
const mvHit = (r: MvRow): SearchHit => ({ id: r.id, connector: null, anchor: r.source_anchor, dn: null, objectType: r.object_type, display: display(parseJsonAttrs(r.attrs)), deleted: r.deleted === 1 });

/** Lower case as SQLite's lower() does it (ASCII only): the index and the scan compare that way. */
const sqlLower = (v: string): string => v.replace(/[A-Z]+/g, (m) => m.toLowerCase());

/** The object's values of `attr` (name compared case-insensitively), lower-cased like the index. */
function valuesOf(attrs: string, attr: string): string[] {
  const lc = attr.toLowerCase();
  const out: string[] = [];
  for (const [k, v] of Object.entries(parseJsonAttrs(attrs))) {
    if (k.toLowerCase() !== lc) continue;
    for (const x of Array.isArray(v) ? v : [v]) if (typeof x === 'string' || typeof x === 'number') out.push(sqlLower(String(x)));
  }
  return out;
}

const encodeCursor = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
function decodeCursor<T>(after: string | undefined, check: (v: unknown) => v is T, empty: T): T {
  if (!after) return empty;
  try {
    const v = JSON.parse(Buffer.from(after, 'base64url').toString('utf8')) as unknown;
    if (check(v)) return v;
  } catch {
    /* below */
  }
  throw new WebError(400, 'BAD_CURSOR', 'after must be the next value of the previous page');
}
const isPair = (v: unknown): v is [string, number] => Array.isArray(v) && typeof v[0] === 'string' && typeof v[1] === 'number';

/**
 * Equals and starts with on an indexed attribute (migrations.ts): a range of the index, then the
 * page's objects read by id and checked against their full values (the index holds 200 characters).
 * Equals pages by id; starts with by (value, id), so its results come in alphabetical order.
 */
export function searchIndexed(db: Database, q: SearchQuery): SearchResult {
  const attr = q.attr.toLowerCase();
  const cut = q.value.slice(0, INDEXED_VALUE_CHARS);
  const byId = db.prepare<[number], MvRow>('SELECT id, object_type, source_anchor, attrs, deleted FROM mv_objects WHERE id = ?');
  const ok = (r: MvRow | undefined): r is MvRow => !!r && valuesOf(r.attrs, attr).some((v) => (q.op === 'eq' ? v === q.value : v.startsWith(q.value)));
  if (q.op === 'eq') {
    const after = Math.max(Number(q.after) || 0, 0);
    const ids = db.prepare<[string, string, number, number], { mv_id: number }>('SELECT mv_id FROM mv_attr_index WHERE attr = ? AND value = ? AND mv_id > ? ORDER BY mv_id LIMIT ?').all(attr, cut, after, q.limit + 1);
    const page = ids.slice(0, q.limit);
    const objects = page.map((x) => byId.get(x.mv_id)).filter(ok).map(mvHit);
    return { space: 'mv', objects, next: ids.length > q.limit ? String(page[page.length - 1]!.mv_id) : null };
  }
  const [v0, id0] = decodeCursor(q.after, isPair, ['', 0]);
  const rows = db
    .prepare<[string, string, string, string, number, number], { value: string; mv_id: number }>(
      `SELECT value, mv_id FROM mv_attr_index WHERE attr = ? AND value >= ? AND value < ? || char(1114111) AND (value, mv_id) > (?, ?) ORDER BY value, mv_id LIMIT ?`,
    )
    .all(attr, cut, cut, v0, id0, q.limit + 1);
  const page = rows.slice(0, q.limit);
  const seen = new Set<number>();
  const objects: SearchHit[] = [];
  for (const x of page) {
    if (seen.has(x.mv_id)) continue;
    seen.add(x.mv_id);
    const r = byId.get(x.mv_id);
    if (!r) continue;
    // An object whose attribute has several matching values is shown once, at the first of them in
    // the index's order, so it appears on one page only.
    const first = valuesOf(r.attrs, attr).filter((v) => v.startsWith(q.value)).map((v) => v.slice(0, INDEXED_VALUE_CHARS)).sort()[0];
    if (first === x.value) objects.push(mvHit(r));
  }
  const last = page[page.length - 1];
  return { space: 'mv', objects, next: rows.length > q.limit && last ? encodeCursor([last.value, last.mv_id]) : null };
}

/** Whether a metaverse search is answered from the attribute index. */
export const usesIndex = (q: SearchQuery): boolean => q.space === 'mv' && q.op !== 'pr' && (INDEXED_ATTRIBUTES as readonly string[]).includes(q.attr.toLowerCase());

export function search(db: Database, q: SearchQuery): SearchResult {
  return usesIndex(q) ? searchIndexed(db, q) : searchScan(db, q);
}

/** Every other search: a walk over the objects' JSON in key order, stopping at a full page. */
export function searchScan(db: Database, q: SearchQuery): SearchResult {
  const m = match(q.op, q.value);
  if (q.space === 'mv') {
    const after = Math.max(Number(q.after) || 0, 0);
    // json_each walks both single values and multi-valued arrays.
    const rows = db
      .prepare<unknown[], { id: number; object_type: string; source_anchor: string; attrs: string; deleted: number }>(
        `SELECT id, object_type, source_anchor, attrs, deleted FROM mv_objects
          WHERE id > ? AND EXISTS (SELECT 1 FROM json_each(attrs, '$."' || ? || '"') AS j WHERE ${m.sql})
          ORDER BY id LIMIT ?`,
      )
      .all(after, q.attr, ...m.args, q.limit + 1);
    const page = rows.slice(0, q.limit);
    const objects: SearchHit[] = page.map((r) => ({ id: r.id, connector: null, anchor: r.source_anchor, dn: null, objectType: r.object_type, display: display(parseJsonAttrs(r.attrs)), deleted: r.deleted === 1 }));
    return { space: 'mv', objects, next: rows.length > q.limit ? String(page[page.length - 1]!.id) : null };
  }
  // The connector space keeps LDAP attribute names in lower case; keyset on its key (connector, anchor).
  let after: [string, string] = ['', ''];
  if (q.after) {
    try {
      const v = JSON.parse(Buffer.from(q.after, 'base64url').toString('utf8')) as unknown;
      if (Array.isArray(v) && typeof v[0] === 'string' && typeof v[1] === 'string') after = [v[0], v[1]];
      else throw new Error('shape');
    } catch {
      throw new WebError(400, 'BAD_CURSOR', 'after must be the next value of the previous page');
    }
  }
  const rows = db
    .prepare<unknown[], { connector: string; anchor: string; object_type: string; dn: string; attrs: string; mv_id: number | null; pending: string | null }>(
      `SELECT connector, anchor, object_type, dn, attrs, mv_id, pending FROM cs_objects
        WHERE (connector, anchor) > (?, ?) AND EXISTS (SELECT 1 FROM json_each(attrs, '$."' || ? || '"') AS j WHERE ${m.sql})
        ORDER BY connector, anchor LIMIT ?`,
    )
    .all(after[0], after[1], q.attr.toLowerCase(), ...m.args, q.limit + 1);
  const page = rows.slice(0, q.limit);
  const last = page[page.length - 1];
  const objects: SearchHit[] = page.map((r) => ({ id: r.mv_id, connector: r.connector, anchor: r.anchor, dn: r.dn, objectType: r.object_type, display: display(parseJsonAttrs(r.attrs)), deleted: r.pending === 'delete' }));
  return { space: 'cs', objects, next: rows.length > q.limit && last ? Buffer.from(JSON.stringify([last.connector, last.anchor])).toString('base64url') : null };
}
