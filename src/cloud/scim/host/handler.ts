/**
 * The SCIM resource endpoints as one function from a request message to a response message, with
 * no HTTP framework in between: the body arrives as bytes and is parsed here, the answer leaves as
 * bytes. The same function runs in the SCIM worker thread (host/worker.ts) or, for an in-memory
 * database, on the caller's thread (host/host.ts); fastify on the main thread only routes, checks
 * the token and moves bytes (routes.ts).
 */
import { runBulk, type BulkOptions } from '../bulk.js';
import { ScimError } from '../errors.js';
import { checkBody } from '../limits.js';
import { parseProjection, returnsAttribute } from '../projection.js';
import { GROUPS } from '../resources/groups.js';
import type { ResourceKind } from '../resources/kind.js';
import { USERS } from '../resources/users.js';
import { SEARCH_REQUEST } from '../schema.js';
import { etagMatches, etagOf, type ListQuery, type Loaded, type ScimService } from '../service.js';
import { isPlainObject } from '../validate.js';

export const SCIM_CONTENT_TYPE = 'application/scim+json; charset=utf-8';

/** A SCIM request as the host receives it. Everything in it can cross a worker-thread boundary. */
export interface ScimWireRequest {
  /** GET, POST, PUT, PATCH or DELETE (HEAD is sent as GET). */
  method: string;
  /** Below the SCIM base: /Users, /Users/.search, /Users/{id} (id %-encoded), the same for /Groups, or /Bulk. */
  path: string;
  query: Record<string, string | string[] | undefined>;
  ifMatch?: string;
  ifNoneMatch?: string;
  /** Absolute URL of the SCIM base (…/scim/v2) for meta.location. */
  baseUrl: string;
  /** The raw body (JSON text), undefined when there is none. */
  body?: Uint8Array;
}

/** An unexpected fault, for the host's log only: never part of the answer. */
export interface ScimFault {
  context: string;
  name: string;
  message: string;
  stack?: string;
}

export interface ScimWireResponse {
  status: number;
  headers: Record<string, string>;
  /** UTF-8 JSON, its own ArrayBuffer (so it can be transferred); absent for 204 and 304. */
  body?: Uint8Array;
  faults?: ScimFault[];
}

export type ScimHandler = (req: ScimWireRequest) => Promise<ScimWireResponse>;

/** Any error thrown while handling a SCIM request, as a SCIM error. */
export function toScimError(err: unknown): ScimError {
  if (err instanceof ScimError) return err;
  const e = err as { statusCode?: number; status?: number; code?: string; message?: string; validation?: unknown };
  const status = e.statusCode ?? e.status;
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || status === 413) return new ScimError(413, undefined, 'the request body is larger than the maximum payload size');
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new ScimError(415, undefined, 'send the body as application/scim+json or application/json');
  if (err instanceof SyntaxError || e.code?.startsWith('FST_ERR_CTP') || (status === 400 && e.validation)) {
    return new ScimError(400, 'invalidSyntax', `the request body is not valid JSON: ${e.message ?? ''}`.trim());
  }
  if (typeof status === 'number' && status >= 400 && status < 500) return new ScimError(status, undefined, e.message || 'request rejected');
  return new ScimError(500, undefined, 'internal error in the SCIM service; see the cloud directory log');
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function faultOf(context: string, err: unknown): ScimFault {
  const e = err instanceof Error ? err : new Error(String(err));
  return { context, name: e.name, message: e.message, ...(e.stack ? { stack: e.stack } : {}) };
}

/** JSON text of a body, or undefined for none; a parse error is the client's (400 invalidSyntax). */
export function parseBody(bytes: Uint8Array | undefined): unknown {
  if (bytes === undefined || bytes.byteLength === 0) return undefined;
  const text = decoder.decode(bytes);
  if (text.trim() === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ScimError(400, 'invalidSyntax', 'the request body is not valid JSON');
  }
  checkBody(parsed);
  return parsed;
}

const RESOURCE_PATH = /^\/(Users|Groups)(?:\/([^/]+))?$/;

export function createScimHandler(svc: ScimService, bulkOptions: Omit<BulkOptions, 'onInternalError'> = {}): ScimHandler {
  return async (req) => {
    const faults: ScimFault[] = [];
    try {
      return withFaults(await dispatch(svc, req, bulkOptions, faults), faults);
    } catch (err) {
      const e = toScimError(err);
      if (e.status >= 500) faults.push(faultOf('SCIM request failed', err));
      const headers: Record<string, string> = { 'content-type': SCIM_CONTENT_TYPE };
      if (e.status === 401) headers['www-authenticate'] = 'Bearer';
      return withFaults({ status: e.status, headers, body: encoder.encode(JSON.stringify(e.toBody())) }, faults);
    }
  };
}

function withFaults(res: ScimWireResponse, faults: ScimFault[]): ScimWireResponse {
  return faults.length ? { ...res, faults } : res;
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): ScimWireResponse {
  return { status, headers: { ...headers, 'content-type': SCIM_CONTENT_TYPE }, body: encoder.encode(JSON.stringify(body)) };
}

async function dispatch(svc: ScimService, req: ScimWireRequest, bulkOptions: Omit<BulkOptions, 'onInternalError'>, faults: ScimFault[]): Promise<ScimWireResponse> {
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  if (req.path === '/Bulk' && method === 'POST') {
    const body = parseBody(req.body);
    return json(200, await runBulk(svc, body, req.baseUrl, { ...bulkOptions, onInternalError: (err) => faults.push(faultOf('a Bulk operation failed', err)) }));
  }
  const m = RESOURCE_PATH.exec(req.path);
  if (!m) throw new ScimError(404, undefined, `no SCIM endpoint ${req.method} ${req.path}`);
  const kind: ResourceKind = m[1] === 'Users' ? USERS : GROUPS;
  const q = req.query;
  const respond = async (status: number, item: Loaded): Promise<ScimWireResponse> => {
    const projection = parseProjection(kind.type, q.attributes, q.excludedAttributes);
    const body = await svc.render(kind, item, req.baseUrl, projection);
    const headers: Record<string, string> = { etag: etagOf(item.version) };
    if (status === 201) headers.location = (body.meta as { location: string }).location;
    return json(status, body, headers);
  };

  if (m[2] === undefined) {
    if (method === 'POST') return respond(201, await svc.create(kind, parseBody(req.body)));
    if (method === 'GET') return json(200, await svc.listResponse(kind, q as ListQuery, req.baseUrl));
    throw new ScimError(404, undefined, `no SCIM endpoint ${req.method} ${req.path}`);
  }
  if (m[2] === '.search' && method === 'POST') {
    const b = parseBody(req.body);
    if (!isPlainObject(b)) throw new ScimError(400, 'invalidSyntax', 'the search body must be a JSON object');
    if (b.schemas !== undefined && !(Array.isArray(b.schemas) && b.schemas.includes(SEARCH_REQUEST))) {
      throw new ScimError(400, 'invalidSyntax', `a search body must have "schemas": ["${SEARCH_REQUEST}"]`);
    }
    return json(200, await svc.listResponse(kind, b as ListQuery, req.baseUrl));
  }
  const id = decodeURIComponent(m[2]);
  switch (method) {
    case 'GET': {
      const projection = parseProjection(kind.type, q.attributes, q.excludedAttributes);
      const needMembers = kind === GROUPS && returnsAttribute(projection, 'members');
      const item = await svc.get(kind, id, needMembers);
      if (req.ifNoneMatch !== undefined && etagMatches(req.ifNoneMatch, item.version)) return { status: 304, headers: { etag: etagOf(item.version) } };
      return respond(200, item);
    }
    case 'PUT':
      return respond(200, await svc.replace(kind, id, parseBody(req.body), req.ifMatch));
    case 'PATCH':
      return respond(200, await svc.patch(kind, id, parseBody(req.body), req.ifMatch));
    case 'DELETE':
      await svc.delete(kind, id, req.ifMatch);
      return { status: 204, headers: {} };
    default:
      throw new ScimError(404, undefined, `no SCIM endpoint ${req.method} ${req.path}`);
  }
}
