/**
 * Bulk (RFC 7644 §3.7). The whole request runs in one SQLite transaction (fast: the sync engine sends
 * hundreds of users per request), each operation in its own savepoint so a failed operation leaves
 * no trace while the others are kept. Operations that reference a `bulkId` defined by a later POST
 * are deferred until it has run; references that can never be resolved fail with 409.
 */
import { badRequest, ScimError } from './errors.js';
import { GROUPS } from './resources/groups.js';
import type { ResourceKind } from './resources/kind.js';
import { USERS } from './resources/users.js';
import { BULK_REQUEST, BULK_RESPONSE } from './schema.js';
import { etagOf, type ScimService } from './service.js';
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

function collectRefs(v: unknown, out: Set<string>): void {
  if (typeof v === 'string') {
    const m = BULK_REF.exec(v);
    if (m) out.add(m[1]!);
  } else if (Array.isArray(v)) for (const x of v) collectRefs(x, out);
  else if (isPlainObject(v)) for (const x of Object.values(v)) collectRefs(x, out);
}

/** A copy of `v` with every "bulkId:x" replaced by the id created for x. */
function substitute(v: unknown, ids: Map<string, string>): unknown {
  if (typeof v === 'string') {
    const m = BULK_REF.exec(v);
    return m ? (ids.get(m[1]!) ?? v) : v;
  }
  if (Array.isArray(v)) return v.map((x) => substitute(x, ids));
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = substitute(x, ids);
    return out;
  }
  return v;
}

function parseRequest(body: unknown, maxOperations: number): { ops: BulkOp[]; failOnErrors: number } {
  if (!isPlainObject(body)) throw badRequest('invalidSyntax', 'the Bulk body must be a JSON object');
  const schemas = body.schemas;
  if (!Array.isArray(schemas) || !schemas.some((s) => typeof s === 'string' && s.toLowerCase() === BULK_REQUEST.toLowerCase())) {
    throw badRequest('invalidSyntax', `a Bulk body must have "schemas": ["${BULK_REQUEST}"]`);
  }
  const raw = body.Operations ?? body.operations;
  if (!Array.isArray(raw)) throw badRequest('invalidSyntax', 'a Bulk body needs an "Operations" array');
  if (raw.length > maxOperations) throw new ScimError(413, undefined, `the Bulk request has ${raw.length} operations; the maximum is ${maxOperations}`);
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
    collectRefs(o.data, refs);
    collectRefs(o.path.split('/').pop(), refs);
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
  return m[2] === undefined ? { kind } : { kind, id: decodeURIComponent(m[2]) };
}

export function runBulk(svc: ScimService, body: unknown, baseUrl: string): Record<string, unknown> {
  const { ops, failOnErrors } = parseRequest(body, svc.limits.maxOperations);
  const results: (BulkResult | undefined)[] = new Array(ops.length);
  const created = new Map<string, string>(); // bulkId → id
  const definedBy = new Map<string, number>(); // bulkId → index of its POST
  const failed = new Set<string>();
  for (const op of ops) if (op.method === 'POST' && op.bulkId !== undefined && !definedBy.has(op.bulkId)) definedBy.set(op.bulkId, op.index);
  let errors = 0;

  const fail = (op: BulkOp, e: ScimError): void => {
    errors++;
    if (op.bulkId !== undefined && op.method === 'POST') failed.add(op.bulkId);
    const r: BulkResult = { method: op.method, status: String(e.status), response: e.toBody() };
    if (op.bulkId !== undefined) r.bulkId = op.bulkId;
    results[op.index] = r;
  };

  const execute = (op: BulkOp): void => {
    for (const ref of op.refs) {
      if (failed.has(ref)) throw new ScimError(409, undefined, `bulkId "${ref}" refers to an operation that failed`);
      if (!created.has(ref)) throw new ScimError(409, undefined, `bulkId "${ref}" is not defined by a POST in this request`);
    }
    if (op.method === 'POST' && definedBy.get(op.bulkId!) !== op.index) throw badRequest('invalidValue', `bulkId "${op.bulkId}" is used by more than one POST`);
    const { kind, id } = target(op.path.replace(/\/bulkId:([^/]+)$/, (m, ref: string) => `/${created.get(ref) ?? m}`), op.method);
    const data = op.refs.size ? substitute(op.data, created) : op.data;
    const r: BulkResult = { method: op.method, status: '200' };
    if (op.bulkId !== undefined) r.bulkId = op.bulkId;
    if (op.method === 'DELETE') {
      svc.delete(kind, id!, op.version);
      r.status = '204';
    } else {
      const item =
        op.method === 'POST' ? svc.create(kind, data) : op.method === 'PUT' ? svc.replace(kind, id!, data, op.version) : svc.patch(kind, id!, data, op.version);
      if (op.method === 'POST') {
        created.set(op.bulkId!, item.id);
        r.status = '201';
      }
      r.location = `${baseUrl}${kind.type.endpoint}/${item.id}`;
      r.version = etagOf(item.version);
    }
    results[op.index] = r;
  };

  svc.transaction(() => {
    let pending = ops;
    while (pending.length && errors < failOnErrors) {
      const deferred: BulkOp[] = [];
      for (const op of pending) {
        if (errors >= failOnErrors) break;
        // Wait for a POST further down that defines a referenced bulkId.
        if ([...op.refs].some((ref) => !created.has(ref) && !failed.has(ref) && definedBy.has(ref) && definedBy.get(ref) !== op.index)) {
          deferred.push(op);
          continue;
        }
        try {
          svc.transaction(() => execute(op)); // a savepoint: a failed operation leaves no partial writes
        } catch (err) {
          if (!(err instanceof ScimError)) throw err;
          fail(op, err);
        }
      }
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
  });

  return { schemas: [BULK_RESPONSE], Operations: results.filter((r): r is BulkResult => r !== undefined) };
}
