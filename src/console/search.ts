/**
 * The console's search: the metaverse or the connector space by one attribute — equals, starts
 * with (both case-insensitive, multi-valued attributes included) or present — keyset-paged.
 */
import type { Database } from '../store/database.js';
import { WebError } from '../web/security.js';
import type { SearchHit, SearchOperator, SearchResult, SearchSpace } from './api-types.js';
import { display, parseJsonAttrs, SECRET_ATTR } from './attrs.js';

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

export function search(db: Database, q: SearchQuery): SearchResult {
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
