/**
 * POST /api/v1/passwordHashes: the sync service delivers OrgId hashes in batches.
 *
 *   request  { "items": [ { "externalId": "...", "hash": "v1;PPH1_MD4,<salt>,<n>,<key>;", "changedAt"?: ISO } ] }  1..1000 items
 *   response { "results": [ { "externalId": "...", "status": "Success" | "TargetNotExported" | "InvalidHash" } ] }
 *
 * Results come in request order. TargetNotExported: no SCIM user has that externalId (yet):
 * the sender keeps the hash and retries after the next export. An item older than the stored
 * hash is answered Success: the cloud already holds a newer password for that user. A changedAt
 * more than MAX_CLOCK_SKEW_MS ahead of this server's clock is taken as the time the item arrived.
 */
import type { FastifyInstance } from 'fastify';
import { isOrgIdHash, MAX_CLOCK_SKEW_MS } from '../../passwords/hash.js';
import { PASSWORD_HASH_ROLES } from '../accounts/roles.js';
import type { AuditLog } from '../audit/store.js';
import { ApiError } from '../auth/errors.js';
import type { Guard } from '../auth/guard.js';
import { findUserIdsByExternalIds } from '../scim/index.js';
import type { Sql } from '../store/sql.js';
import type { PasswordHashStore, StoredHashInput } from './store.js';

export const MAX_BATCH = 1000;

export type HashStatus = 'Success' | 'TargetNotExported' | 'InvalidHash';

export interface PasswordRoutesDeps {
  db: Sql;
  guard: Guard;
  hashes: PasswordHashStore;
  audit: AuditLog;
  now: () => number;
}

interface Item {
  externalId: string;
  hash: unknown;
  changedAt?: unknown;
}

function parseItems(body: unknown): Item[] {
  const items = (body as { items?: unknown } | null)?.items;
  if (!Array.isArray(items) || items.length < 1 || items.length > MAX_BATCH) {
    throw new ApiError(400, 'VALIDATION_FAILED', `the body must be { "items": [...] } with 1 to ${MAX_BATCH} items`);
  }
  items.forEach((it: unknown, i) => {
    const externalId = (it as { externalId?: unknown } | null)?.externalId;
    if (typeof externalId !== 'string' || externalId.length === 0 || externalId.length > 1024) {
      throw new ApiError(400, 'VALIDATION_FAILED', `items[${i}].externalId must be a non-empty string`);
    }
  });
  return items as Item[];
}

/** A changedAt as a normalised ISO string, or undefined when absent/unusable. */
function changedAtOf(value: unknown): string | undefined | null {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') return null;
  const t = Date.parse(value);
  return Number.isFinite(t) ? new Date(t).toISOString() : null;
}

export function registerPasswordRoutes(app: FastifyInstance, deps: PasswordRoutesDeps): void {
  app.post('/api/v1/passwordHashes', async (req) => {
    const principal = await deps.guard.authenticate(req, PASSWORD_HASH_ROLES);
    const items = parseItems(req.body);
    const ids = await findUserIdsByExternalIds(
      deps.db,
      [...new Set(items.map((i) => i.externalId))],
    );
    const receivedMs = deps.now();
    const received = new Date(receivedMs).toISOString();
    const toStore: StoredHashInput[] = [];
    const results = items.map((it): { externalId: string; status: HashStatus } => {
      const changedAt = changedAtOf(it.changedAt);
      if (typeof it.hash !== 'string' || !isOrgIdHash(it.hash) || changedAt === null) {
        return { externalId: it.externalId, status: 'InvalidHash' };
      }
      const userId = ids.get(it.externalId);
      if (userId === undefined) return { externalId: it.externalId, status: 'TargetNotExported' };
      // A date ahead of this clock beyond the allowed skew (the sender's DC clock ran ahead) is the
      // arrival: kept, it would make every real change of this user "older" until that date.
      const at = changedAt === undefined || Date.parse(changedAt) > receivedMs + MAX_CLOCK_SKEW_MS ? received : changedAt;
      toStore.push({ userId, hash: it.hash, changedAt: at });
      return { externalId: it.externalId, status: 'Success' };
    });
    await deps.hashes.putMany(toStore);
    const count = (s: HashStatus) => results.filter((r) => r.status === s).length;
    await deps.audit.record({
      type: 'passwordHashes',
      actor: principal.name,
      ip: req.ip,
      result: 'success',
      reason: 'batch_received',
      details: { items: items.length, success: count('Success'), targetNotExported: count('TargetNotExported'), invalidHash: count('InvalidHash') },
    });
    return { results };
  });
}
