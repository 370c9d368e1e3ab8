/**
 * Request handlers the sync service mounts (the HTTP wiring lives in src/service/):
 *
 *   POST /api/v1/agent/password-hashes   bearer: the agent token      → handleAgentBatch
 *     { "connector"?: "corp-ad", "items": [ { "anchor": "...", "orgIdHash": "v1;PPH1_MD4,...;", "changedAt"?: ISO } ] }  1..1000 items
 *     200 { "accepted": n, "stale": n }   400 { "error": { code, message, hint } }
 *   POST /api/v1/password-change-notifications   (HTTPS, PCN)          → handlePasswordChangeNotification
 *     { "user": "<sAMAccountName | UPN | DN | anchor>", "password": "<new password>" }
 *     202 { "status": "Queued", "anchor": "..." }   400/404/500 { "error": { code, message, hint } }
 *
 * Handlers return { statusCode, body }; they never put a password or a hash in a body, an event
 * or an error. Bodies of these routes must not be logged (the service's logger redacts req.body).
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { IdsyncError, toIdsyncError } from '../core/errors.js';
import { EVENTS } from '../events/catalog.js';
import { passwordError } from './errors.js';
import { isOrgIdHash } from './hash.js';
import type { PasswordPipeline } from './pipeline.js';

export const AGENT_BATCH_PATH = '/api/v1/agent/password-hashes';
export const PCN_PATH = '/api/v1/password-change-notifications';
export const MAX_AGENT_BATCH = 1000;
/** Name of the agent token in the credential store (`idsync credentials set agent`). */
export const AGENT_TOKEN_CREDENTIAL = 'agent';

export interface HandlerResult {
  statusCode: number;
  body: Record<string, unknown>;
}

function errorBody(e: IdsyncError): Record<string, unknown> {
  return { error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) } };
}

function statusFor(e: IdsyncError): number {
  switch (e.code as string) {
    case 'PASSWORD_INPUT_INVALID':
    case 'PASSWORD_TOO_LONG':
    case 'PASSWORD_NOT_TEXT':
    case 'HASH_INPUT_INVALID':
      return 400;
    case 'PASSWORD_USER_UNKNOWN':
      return 404;
    default:
      return 500;
  }
}

/** Constant-time check of an `Authorization: Bearer <token>` header against the stored agent token. */
export function verifyBearer(header: string | undefined, expected: string | undefined): boolean {
  if (!header || !expected) return false;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) return false;
  const a = createHash('sha256').update(m[1]!).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

interface AgentItem {
  anchor: string;
  orgIdHash: string;
  changedAt?: Date;
}

function parseAgentBatch(body: unknown): { connector?: string; items: AgentItem[] } {
  const b = body as { connector?: unknown; items?: unknown } | null;
  if (!b || typeof b !== 'object' || !Array.isArray(b.items) || b.items.length < 1 || b.items.length > MAX_AGENT_BATCH) {
    throw passwordError('PASSWORD_INPUT_INVALID', `the body must be {"items": [...]} with 1 to ${MAX_AGENT_BATCH} items`, {
      hint: 'Each item is {"anchor", "orgIdHash", "changedAt"?}; send more items in several requests.',
    });
  }
  if (b.connector !== undefined && (typeof b.connector !== 'string' || !/^[a-z][a-z0-9-]{0,62}$/.test(b.connector))) {
    throw passwordError('PASSWORD_INPUT_INVALID', '"connector" must be a connector name from the configuration', {
      hint: 'Start the agent with --connector NAME (the AD connector of this domain), or leave it out.',
    });
  }
  const items = b.items.map((raw: unknown, i: number): AgentItem => {
    const it = raw as { anchor?: unknown; orgIdHash?: unknown; changedAt?: unknown } | null;
    if (!it || typeof it.anchor !== 'string' || it.anchor.length === 0 || it.anchor.length > 1024) {
      throw passwordError('PASSWORD_INPUT_INVALID', `items[${i}].anchor must be a non-empty string`, { details: { index: i } });
    }
    if (typeof it.orgIdHash !== 'string') {
      throw passwordError('PASSWORD_INPUT_INVALID', `items[${i}].orgIdHash must be a string`, { details: { index: i } });
    }
    let changedAt: Date | undefined;
    if (it.changedAt !== undefined && it.changedAt !== null) {
      changedAt = typeof it.changedAt === 'string' ? new Date(it.changedAt) : new Date(NaN);
      if (Number.isNaN(changedAt.getTime())) {
        throw passwordError('PASSWORD_INPUT_INVALID', `items[${i}].changedAt must be an ISO date-time`, { details: { index: i } });
      }
    }
    return { anchor: it.anchor, orgIdHash: it.orgIdHash, ...(changedAt ? { changedAt } : {}) };
  });
  return { ...(typeof b.connector === 'string' ? { connector: b.connector } : {}), items };
}

/**
 * A batch from the DC agent: `{ anchor, orgIdHash, changedAt }` items (hashes computed on the DC).
 * All items are checked before any is queued; an invalid batch queues nothing (400). `accepted`
 * counts the items taken (a change older than one already known is taken and ignored).
 */
export async function handleAgentBatch(pipeline: PasswordPipeline, body: unknown): Promise<HandlerResult> {
  let parsed;
  try {
    parsed = parseAgentBatch(body);
  } catch (err) {
    const e = toIdsyncError(err);
    return { statusCode: statusFor(e), body: errorBody(e) };
  }
  const bad = parsed.items.findIndex((it) => !isOrgIdHash(it.orgIdHash));
  if (bad >= 0) {
    const e = passwordError('PASSWORD_INPUT_INVALID', `items[${bad}].orgIdHash is not an OrgId hash`, {
      hint: 'Expected v1;PPH1_MD4,<salt hex>,<iterations>,<64 hex digits>;',
      details: { index: bad, anchor: parsed.items[bad]!.anchor },
    });
    return { statusCode: 400, body: errorBody(e) };
  }
  let accepted = 0;
  try {
    // One transaction for the batch: the agent's answer means every item is on disk.
    const items = parsed.items.map((it) => ({ ...it, connector: parsed.connector ?? pipeline.connectorOf(it.anchor) ?? 'agent' }));
    pipeline.acceptOrgIdHashes(items, 'samba-agent');
    accepted = items.length;
  } catch (err) {
    const e = toIdsyncError(err);
    pipeline.events.emit(EVENTS.PHS_DOMAIN_ERROR, { connector: parsed.connector ?? 'agent', error: e.message, code: e.code });
    return { statusCode: statusFor(e), body: { ...errorBody(e), accepted } };
  }
  return { statusCode: 200, body: { accepted } };
}

/**
 * A password change notification: `{ user, password }`. Validates, hashes at once, queues; 202.
 * Errors are reported as event 6900 with the reason — the password is never part of it.
 */
export async function handlePasswordChangeNotification(pipeline: PasswordPipeline, body: unknown): Promise<HandlerResult> {
  const b = body as { user?: unknown; password?: unknown } | null;
  const user = b && typeof b === 'object' && typeof b.user === 'string' ? b.user.slice(0, 1024) : undefined;
  try {
    if (!b || typeof b !== 'object' || typeof b.user !== 'string' || b.user.trim() === '' || b.user.length > 1024) {
      throw passwordError('PASSWORD_INPUT_INVALID', 'the notification needs "user": the sAMAccountName, userPrincipalName, DN or anchor', {
        hint: 'Send {"user": "...", "password": "..."} as JSON.',
      });
    }
    if (typeof b.password !== 'string' || b.password.length === 0) {
      throw passwordError('PASSWORD_INPUT_INVALID', 'the notification needs "password": the new password as a non-empty string', {
        hint: 'Send {"user": "...", "password": "..."} as JSON.',
      });
    }
    const { anchor } = await pipeline.acceptPassword(b.user, b.password, 'pcn');
    return { statusCode: 202, body: { status: 'Queued', anchor } };
  } catch (err) {
    const e = toIdsyncError(err);
    // The message of every error raised above is built from identifiers only; scrub it anyway.
    const password = typeof b?.password === 'string' && b.password.length > 0 ? b.password : undefined;
    const safe = password ? new IdsyncError(e.code, e.message.split(password).join('[redacted]'), { hint: e.hint }) : e;
    pipeline.events.emit(EVENTS.PCN_ERROR, { user, error: safe.message, code: safe.code });
    return { statusCode: statusFor(safe), body: errorBody(safe) };
  }
}
