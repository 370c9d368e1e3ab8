/**
 * Bulk (RFC 7644 §3.7). On SQLite the request runs in one transaction per slice of
 * BulkOptions.sliceMs (a Bulk of 100 creates is one; the sync engine sends hundreds of users per
 * request), each operation in its own savepoint (or one atomic statement) so a failed operation
 * leaves no trace while the others are kept. On PostgreSQL each operation is its own transaction: a
 * long slice would hold row locks other nodes' writers wait for (and could deadlock with), and RFC
 * 7644 makes each operation stand alone anyway. Uniqueness (userName, externalId) is the unique
 * indexes' verdict, not a query per operation. Operations that reference a `bulkId` defined by a later POST
 * are deferred until it has run; references that can never be resolved fail with 409.
 */
import { badRequest, ScimError } from './errors.js';
import { FILTER_STRING } from './filter.js';
import { GROUPS } from './resources/groups.js';
import type { ResourceKind } from './resources/kind.js';
import { USERS } from './resources/users.js';
import { tooManyOperations } from './limits.js';
import { BULK_REQUEST, BULK_RESPONSE, SCHEMA_ENTERPRISE_USER } from './schema.js';
import type { Sql } from '../store/sql.js';
import { etagOf, type Loaded, type ScimService } from './service.js';
import { SqliteStore } from '../store/sqlite.js';
import { isPlainObject } from './validate.js';

type Method = 'POST' | 'PUT' | 'PATCH' | 'DELETE';

interface BulkOp {
  index: number;
  method: Method;
  bulkId?: string;
  version?: string;
  path: string;
  data?: unknown;
  /** bulkIds this operation refers to (in data or path). */
  refs: Set<string>;
}

export interface BulkResult {
  method: string;
  bulkId?: string;
  version?: string;
  location?: string;
  status: string;
  response?: unknown;
}

const BULK_REF = /^bulkId:(.+)$/;
const ENTERPRISE_LC = SCHEMA_ENTERPRISE_USER.toLowerCase();

type RefFn = (s: string) => string;

/**
 * Applies `fn` to the strings where a "bulkId:x" reference may stand (RFC 7644 §3.7.2): the value
 * of a group member or of a user's manager, a member value compared in a PATCH path's filter
 * (`members[value eq "bulkId:x"]`), and the last segment of the path. A "bulkId:x" anywhere else
 * (a displayName, a title) is plain data. Returns a copy of `data`.
 */
function mapRefs(method: Method, data: unknown, fn: RefFn): unknown {
  if (!isPlainObject(data)) return data;
  if (method !== 'PATCH') return mapResource(data, fn);
  const ops = data.Operations ?? data.operations;
  if (!Array.isArray(ops)) return data;
  const mapped = ops.map((op: unknown) => {
    if (!isPlainObject(op)) return op;
    const path = typeof op.path === 'string' ? op.path.trim().toLowerCase() : undefined;
    let value = op.value;
    if (path === undefined) value = isPlainObject(value) ? mapResource(value, fn) : value;
    else if (/^members(\[.*\])?$/.test(path)) value = mapElements(value, fn);
    else if (/^members(\[.*\])?\.value$/.test(path) || /(^|:)manager\.value$/.test(path)) value = typeof value === 'string' ? fn(value) : value;
    else if (/(^|:)manager$/.test(path)) value = mapElement(value, fn);
    else if (path === ENTERPRISE_LC) value = isPlainObject(value) ? mapKeys(value, fn) : value;
    const out: Record<string, unknown> = { ...op, value };
    if (path?.startsWith('members[')) out.path = mapFilterValues(op.path as string, fn);
    return out;
  });
  return { ...data, [data.Operations !== undefined ? 'Operations' : 'operations']: mapped };
}

/** What may stand before a filter string compared to `value`. */
const VALUE_COMPARED = /(?:^|[\s[(])value\s+(?:eq|ne|co|sw|ew|gt|ge|lt|le)\s*$/i;

/**
 * `fn` applied to the string literals compared to `value` in a PATCH path's filter
 * (`members[value eq "bulkId:x" or value eq "bulkId:y"]`); the rest of the path is kept as written.
 * The text between two literals holds no quote, so the comparison before a literal is matched
 * without being fooled by a quoted "value eq".
 */
function mapFilterValues(path: string, fn: RefFn): string {
  let out = '';
  let last = 0;
  for (const m of path.matchAll(FILTER_STRING)) {
    const at = m.index;
    const between = path.slice(last, at);
    let literal = m[0];
    if (VALUE_COMPARED.test(between)) {
      let s: unknown;
      try {
        s = JSON.parse(literal);
      } catch {
        s = undefined; // not a JSON string: the filter parser reports it
      }
      if (typeof s === 'string' && s.startsWith('bulkId:')) {
        const mapped = fn(s);
        if (mapped !== s) literal = JSON.stringify(mapped);
      }
    }
    out += between + literal;
    last = at + m[0].length;
  }
  return out + path.slice(last);
}

function mapElement(v: unknown, fn: RefFn): unknown {
  if (!isPlainObject(v)) return v;
  const out = { ...v };
  for (const k of Object.keys(out)) if (k.toLowerCase() === 'value' && typeof out[k] === 'string') out[k] = fn(out[k] as string);
  return out;
}

function mapElements(v: unknown, fn: RefFn): unknown {
  return Array.isArray(v) ? v.map((x) => mapElement(x, fn)) : mapElement(v, fn);
}

/** members / manager keys of a resource (or of a path-less PATCH value, or of the enterprise extension). */
function mapKeys(obj: Record<string, unknown>, fn: RefFn): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    const lk = k.toLowerCase();
    if (lk === 'members') out[k] = mapElements(v, fn);
    else if (lk === 'manager' || lk === `${ENTERPRISE_LC}:manager`) out[k] = mapElement(v, fn);
    else if (lk === ENTERPRISE_LC && isPlainObject(v)) out[k] = mapKeys(v, fn);
    else out[k] = v;
  }
  return out;
}

function mapResource(obj: Record<string, unknown>, fn: RefFn): Record<string, unknown> {
  return mapKeys(obj, fn);
}

/**
 * Adds the bulkIds `data` refers to to `out`. For a resource (POST, PUT) it only looks at the keys
 * where a reference may stand, without copying anything: every operation of a Bulk passes here.
 */
function collectRefs(method: Method, data: unknown, out: Set<string>): void {
  const add = (s: string): string => {
    const m = s.startsWith('bulkId:') ? BULK_REF.exec(s) : null;
    if (m) out.add(m[1]!);
    return s;
  };
  if (method === 'PATCH') mapRefs(method, data, add);
  else if (isPlainObject(data)) visitKeys(data, add);
}

function visitKeys(obj: Record<string, unknown>, fn: RefFn): void {
  for (const k in obj) {
    if (!Object.hasOwn(obj, k)) continue;
    const c = k.charCodeAt(0) | 0x20; // lower-cased first letter: most keys are ruled out without toLowerCase
    if (c !== 0x6d /* m */ && c !== 0x75 /* u */) continue;
    const lk = k.toLowerCase();
    const v = obj[k];
    if (lk === 'members') mapElements(v, fn);
    else if (lk === 'manager' || lk === `${ENTERPRISE_LC}:manager`) mapElement(v, fn);
    else if (lk === ENTERPRISE_LC && isPlainObject(v)) visitKeys(v, fn);
  }
}

/** A copy of `data` with every reference "bulkId:x" replaced by the id created for x. */
function substitute(method: Method, data: unknown, ids: Map<string, string>): unknown {
  return mapRefs(method, data, (s) => {
    const m = BULK_REF.exec(s);
    return m ? (ids.get(m[1]!) ?? s) : s;
  });
}

function parseRequest(body: unknown, maxOperations: number): { ops: BulkOp[]; failOnErrors: number } {
  if (!isPlainObject(body)) throw badRequest('invalidSyntax', 'the Bulk body must be a JSON object');
  const schemas = body.schemas;
  if (!Array.isArray(schemas) || !schemas.some((s) => typeof s === 'string' && s.toLowerCase() === BULK_REQUEST.toLowerCase())) {
    throw badRequest('invalidSyntax', `a Bulk body must have "schemas": ["${BULK_REQUEST}"]`);
  }
  const raw = body.Operations ?? body.operations;
  if (!Array.isArray(raw)) throw badRequest('invalidSyntax', 'a Bulk body needs an "Operations" array');
  if (raw.length > maxOperations) throw tooManyOperations('the Bulk request', maxOperations, raw.length);
  let failOnErrors = Number.POSITIVE_INFINITY;
  if (body.failOnErrors !== undefined) {
    if (typeof body.failOnErrors !== 'number' || !Number.isInteger(body.failOnErrors) || body.failOnErrors < 1) {
      throw badRequest('invalidSyntax', '"failOnErrors" must be a positive integer');
    }
    failOnErrors = body.failOnErrors;
  }
  const ops = raw.map((o, index): BulkOp => {
    if (!isPlainObject(o)) throw badRequest('invalidSyntax', `Operations[${index}] must be an object`);
    const method = typeof o.method === 'string' ? o.method.toUpperCase() : '';
    if (method !== 'POST' && method !== 'PUT' && method !== 'PATCH' && method !== 'DELETE') {
      throw badRequest('invalidSyntax', `Operations[${index}].method must be POST, PUT, PATCH or DELETE`);
    }
    if (typeof o.path !== 'string' || o.path === '') throw badRequest('invalidSyntax', `Operations[${index}].path is required`);
    if (o.bulkId !== undefined && typeof o.bulkId !== 'string') throw badRequest('invalidSyntax', `Operations[${index}].bulkId must be a string`);
    if (method === 'POST' && o.bulkId === undefined) throw badRequest('invalidSyntax', `Operations[${index}]: POST needs a bulkId`);
    if (o.version !== undefined && typeof o.version !== 'string') throw badRequest('invalidSyntax', `Operations[${index}].version must be a string`);
    const refs = new Set<string>();
    collectRefs(method, o.data, refs);
    const last = o.path.includes('bulkId:') ? BULK_REF.exec(o.path.split('/').pop() ?? '') : null;
    if (last) refs.add(last[1]!);
    const op: BulkOp = { index, method, path: o.path, data: o.data, refs };
    if (typeof o.bulkId === 'string') op.bulkId = o.bulkId;
    if (typeof o.version === 'string') op.version = o.version;
    return op;
  });
  return { ops, failOnErrors };
}

function target(path: string, method: Method): { kind: ResourceKind; id?: string } {
  const m = /^\/?(Users|Groups)(?:\/([^/]+))?$/i.exec(path);
  if (!m) throw badRequest('invalidPath', `unsupported Bulk path "${path}" (use /Users or /Groups[/id])`);
  const kind = m[1]!.toLowerCase() === 'users' ? USERS : GROUPS;
  if (method === 'POST' && m[2] !== undefined) throw badRequest('invalidPath', 'POST goes to /Users or /Groups, without an id');
  if (method !== 'POST' && m[2] === undefined) throw badRequest('invalidPath', `${method} needs /Users/{id} or /Groups/{id}`);
  if (m[2] === undefined) return { kind };
  try {
    return { kind, id: decodeURIComponent(m[2]) };
  } catch {
    throw badRequest('invalidPath', `Bulk path "${path}" has an invalid %-escape`);
  }
}

/** A path to the Users endpoint or to one user (as `target` reads it). */
const USERS_PATH = /^\/?Users(\/[^/]+)?$/i;
/** The Groups endpoint (as `target` reads it), where a POST goes. */
const GROUPS_ENDPOINT = /^\/?Groups$/i;

/**
 * POST, PUT or PATCH of a User: its one write that can fail is a single INSERT or UPDATE of its row
 * (after a rename, the version bump of its groups follows it and has no constraint to break).
 */
const writesOneRow = (op: BulkOp): boolean => op.method !== 'DELETE' && /^\/?Users(\/|$)/i.test(op.path);

/** The open SQLite transaction `tx`, where a nested transaction runs inline instead of in a savepoint. */
const inline = (tx: Sql): Sql => ({ ...tx, transaction: <T>(fn: (t: Sql) => Promise<T>) => fn(tx) });

/** Milliseconds of Bulk work between two turns of the event loop. */
export const BULK_SLICE_MS = 20;

export interface BulkOptions {
  /** Default BULK_SLICE_MS. */
  sliceMs?: number;
  /** Ends the current slice (and its transaction) early when true: another connection waits for the write lock. */
  yieldNow?: () => boolean;
  /** Runs between two slices, after the commit; default one turn of the event loop. */
  between?: () => Promise<void>;
  /** Told of an unexpected fault in one operation (that operation answers 500, the others are kept). */
  onInternalError?: (err: unknown) => void;
  /**
   * false: every operation through the general (async) path, also a User write or a Group POST on
   * SQLite. For the test that holds the fast path to the general one; default true.
   */
  fastPath?: boolean;
}

export async function runBulk(svc: ScimService, body: unknown, baseUrl: string, options: BulkOptions = {}): Promise<Record<string, unknown>> {
  const sliceMs = options.sliceMs ?? BULK_SLICE_MS;
  const internalError = (err: unknown): ScimError => {
    options.onInternalError?.(err);
    return new ScimError(500, undefined, 'internal error in this operation; see the cloud directory log');
  };
  const { ops, failOnErrors } = parseRequest(body, svc.limits.maxOperations);
  const results: (BulkResult | undefined)[] = new Array(ops.length);
  const created = new Map<string, string>(); // bulkId → id
  const definedBy = new Map<string, number>(); // bulkId → index of its POST
  const failed = new Set<string>();
  for (const op of ops) if (op.method === 'POST' && op.bulkId !== undefined && !definedBy.has(op.bulkId)) definedBy.set(op.bulkId, op.index);
  let errors = 0;

  const fail = (op: BulkOp, e: ScimError): void => {
    errors++;
    // Only the POST that defines the bulkId: a second POST with the same bulkId fails alone (400),
    // and references to the first, successful one keep working.
    if (op.bulkId !== undefined && definedBy.get(op.bulkId) === op.index) failed.add(op.bulkId);
    const r: BulkResult = { method: op.method, status: String(e.status), response: e.toBody() };
    if (op.bulkId !== undefined) r.bulkId = op.bulkId;
    results[op.index] = r;
  };

  /** What every operation checks before it runs: its references, its bulkId, its path. */
  const prepare = (op: BulkOp): { kind: ResourceKind; id: string | undefined; data: unknown; r: BulkResult } => {
    for (const ref of op.refs) {
      if (failed.has(ref)) throw new ScimError(409, undefined, `bulkId "${ref}" refers to an operation that failed`);
      if (!created.has(ref)) throw new ScimError(409, undefined, `bulkId "${ref}" is not defined by a POST in this request`);
    }
    if (op.method === 'POST' && definedBy.get(op.bulkId!) !== op.index) throw badRequest('invalidValue', `bulkId "${op.bulkId}" is used by more than one POST`);
    const { kind, id } = target(op.refs.size ? op.path.replace(/\/bulkId:([^/]+)$/, (m, ref: string) => `/${created.get(ref) ?? m}`) : op.path, op.method);
    const data = op.refs.size ? substitute(op.method, op.data, created) : op.data;
    const r: BulkResult = { method: op.method, status: '200' };
    if (op.bulkId !== undefined) r.bulkId = op.bulkId;
    return { kind, id, data, r };
  };

  const done = (op: BulkOp, kind: ResourceKind, item: Loaded, r: BulkResult): void => {
    if (op.method === 'POST') {
      created.set(op.bulkId!, item.id);
      r.status = '201';
    }
    r.location = `${baseUrl}${kind.type.endpoint}/${item.id}`;
    r.version = etagOf(item.version);
    results[op.index] = r;
  };

  const execute = async (op: BulkOp, q: Sql | undefined): Promise<void> => {
    const { kind, id, data, r } = prepare(op);
    if (op.method === 'DELETE') {
      await svc.delete(kind, id!, op.version, q);
      r.status = '204';
      results[op.index] = r;
      return;
    }
    const item =
      op.method === 'POST'
        ? await svc.create(kind, data, q)
        : op.method === 'PUT'
          ? await svc.replace(kind, id!, data, op.version, q)
          : await svc.patch(kind, id!, data, op.version, q);
    done(op, kind, item, r);
  };

  // The fast path: a User POST, PUT or PATCH (its one write is atomic) and a Group POST (its
  // writes in a savepoint of their own) inside a SQLite slice, synchronously; every other
  // operation, and every operation on PostgreSQL, takes the general path.
  const fastStore = options.fastPath !== false && svc.sql instanceof SqliteStore ? svc.sql : undefined;
  /** True when it handled `op`; false for an operation that is not a User POST, PUT or PATCH or a Group POST. */
  const executeNow = (op: BulkOp, store: SqliteStore): boolean => {
    const groupPost = op.method === 'POST' && GROUPS_ENDPOINT.test(op.path);
    if (!groupPost && (op.method === 'DELETE' || !USERS_PATH.test(op.path))) return false;
    const { kind, id, data, r } = prepare(op);
    const item = groupPost
      ? svc.createGroupNow(data, store)
      : op.method === 'POST'
        ? svc.createUserNow(data, store)
        : op.method === 'PUT'
          ? svc.replaceUserNow(id!, data, op.version, store)
          : svc.patchUserNow(id!, data, op.version, store);
    done(op, kind, item, r);
    return true;
  };

  // Operations run in slices of about BULK_SLICE_MS, each slice one transaction (fast commits),
  // with the event loop free in between: a 1000-operation Bulk must not stall /healthz or sign-in.
  // Each operation stands alone (RFC 7644 §3.7), so another request between slices changes nothing.
  let pending = ops;
  while (pending.length && errors < failOnErrors) {
    const deferred: BulkOp[] = [];
    let i = 0;
    while (i < pending.length && errors < failOnErrors) {
      const started = performance.now();
      const slice = async (q: Sql | undefined): Promise<void> => {
        while (i < pending.length && errors < failOnErrors) {
          const op = pending[i++]!;
          // Wait for a POST further down that defines a referenced bulkId.
          if (op.refs.size && [...op.refs].some((ref) => !created.has(ref) && !failed.has(ref) && definedBy.has(ref) && definedBy.get(ref) !== op.index)) {
            deferred.push(op);
            continue;
          }
          try {
            // A failed operation leaves no partial writes: its own savepoint (SQLite; the fast path's
            // Group POST takes one synchronously) or transaction (PostgreSQL), except on SQLite where
            // its only write is one statement (a User's INSERT or UPDATE), which SQLite makes atomic anyway.
            if (!(q && fastStore && executeNow(op, fastStore))) await execute(op, q && writesOneRow(op) ? inline(q) : q);
          } catch (err) {
            fail(op, err instanceof ScimError ? err : internalError(err));
          }
          if (performance.now() - started >= sliceMs || options.yieldNow?.()) break;
        }
      };
      if (svc.sql.dialect === 'sqlite') await svc.sql.transaction((tx) => slice(tx));
      else await slice(undefined);
      if (i < pending.length) await (options.between ? options.between() : new Promise((resolve) => setImmediate(resolve)));
    }
    if (errors >= failOnErrors) break;
    if (deferred.length === pending.length) {
      // No progress: the remaining operations reference each other in a cycle.
      for (const op of deferred) {
        if (errors >= failOnErrors) break;
        fail(op, new ScimError(409, undefined, 'circular bulkId references could not be resolved'));
      }
      break;
    }
    pending = deferred;
  }

  return { schemas: [BULK_RESPONSE], Operations: results.filter((r): r is BulkResult => r !== undefined) };
}
