/**
 * The fence of a sync service on several nodes (docs/ha.md). The leader of the sync service's nodes
 * sends its lease's fencing token with every write (`x-idsync-fencing-token`); this module records
 * the highest token seen per installation and refuses a write that carries a lower one with 409
 * (error FENCED, header `x-idsync-fenced: <highest>`). So a leader that was paused past its lease
 * and resumes cannot write here after the next leader did: a new leader raises the fence first
 * (POST /api/v1/syncFence), before its first cycle or delivery. Each refusal is counted, audited,
 * and readable with GET /api/v1/syncFences.
 *
 * The check runs in preHandler, after the body was read, and moments before the handler writes: a
 * request held back mid-upload by a paused sender is checked when it arrives, not when it began.
 * Requests without the header (a sync service on one node, an administrator) are not fenced.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { FENCING_TOKEN_HEADER } from '../../store/fence.js';
import type { Migration } from '../../store/database.js';
import type { Principal } from '../accounts/store.js';
import { SCIM_ROLES } from '../accounts/roles.js';
import type { AuditLog } from '../audit/store.js';
import { ApiError } from '../auth/errors.js';
import type { Guard } from '../auth/guard.js';
import type { Sql } from '../store/sql.js';
import { INSTALLATION_HEADER } from '../sync-installations/index.js';

export const FENCED_HEADER = 'x-idsync-fenced';
export const SYNC_FENCE_PATH = '/api/v1/syncFence';
const PASSWORD_HASHES_PATH = '/api/v1/passwordHashes';

export const syncFenceMigrations: Migration[] = [
  {
    id: 'cloud/sync-fence-001',
    sql: `
CREATE TABLE sync_fences (
  installation       TEXT PRIMARY KEY,
  highest            INTEGER NOT NULL,
  raised_at          TEXT NOT NULL,
  refused            INTEGER NOT NULL DEFAULT 0,
  last_refused_at    TEXT,
  last_refused_token INTEGER
);
`,
  },
];

export const syncFencePgMigrations: Migration[] = [
  {
    id: 'cloud/sync-fence-001',
    sql: `
CREATE TABLE sync_fences (
  installation       TEXT COLLATE "C" PRIMARY KEY,
  highest            BIGINT NOT NULL,
  raised_at          TEXT NOT NULL,
  refused            BIGINT NOT NULL DEFAULT 0,
  last_refused_at    TEXT,
  last_refused_token BIGINT
);
`,
  },
];

export interface SyncFence {
  installation: string;
  /** The highest fencing token seen: writes with a lower one are refused. */
  highest: number;
  /** When the highest token was first seen (the new leader's first write). */
  raisedAt: string;
  /** Writes refused for a lower token, and the last of them. */
  refused: number;
  lastRefusedAt: string | null;
  lastRefusedToken: number | null;
}

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const ID_RE = /^[A-Za-z0-9._:-]{1,100}$/;
const TOKEN_RE = /^[1-9]\d{0,14}$/;

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

export function registerSyncFence(app: FastifyInstance, deps: { db: Sql; guard: Guard; audit: AuditLog; now: () => number; isScimPath: (url: string) => boolean }): void {
  const max = deps.db.dialect === 'postgres' ? 'GREATEST' : 'MAX';
  const raise = `INSERT INTO sync_fences (installation, highest, raised_at, refused) VALUES (?, ?, ?, 0)
     ON CONFLICT (installation) DO UPDATE SET
       raised_at = CASE WHEN excluded.highest > sync_fences.highest THEN excluded.raised_at ELSE sync_fences.raised_at END,
       highest = ${max}(sync_fences.highest, excluded.highest)
     RETURNING highest`;
  const installationOf = (req: FastifyRequest, principal: Principal): string => {
    const h = req.headers[INSTALLATION_HEADER];
    return typeof h === 'string' && ID_RE.test(h) ? h : `${principal.kind}:${principal.name}`;
  };
  const fenced = (url: string): boolean => {
    const p = pathOf(url);
    return deps.isScimPath(url) || p === PASSWORD_HASHES_PATH || p === SYNC_FENCE_PATH;
  };

  app.addHook('preHandler', async (req, reply) => {
    if (!WRITE_METHODS.has(req.method) || !fenced(req.url)) return;
    const header = req.headers[FENCING_TOKEN_HEADER];
    if (header === undefined) {
      if (pathOf(req.url) === SYNC_FENCE_PATH) throw new ApiError(400, 'VALIDATION_FAILED', `send the fencing token in the ${FENCING_TOKEN_HEADER} header`);
      return;
    }
    if (typeof header !== 'string' || !TOKEN_RE.test(header)) throw new ApiError(400, 'VALIDATION_FAILED', `the ${FENCING_TOKEN_HEADER} header must be a positive integer`);
    const token = Number(header);
    const principal = await deps.guard.authenticate(req, SCIM_ROLES); // cached per request by the guard
    const installation = installationOf(req, principal);
    const at = new Date(deps.now()).toISOString();
    const row = await deps.db.get<{ highest: number }>(raise, [installation, token, at]);
    const highest = Number(row?.highest ?? token);
    if (token >= highest) return;
    await deps.db.run('UPDATE sync_fences SET refused = refused + 1, last_refused_at = ?, last_refused_token = ? WHERE installation = ?', [at, token, installation]);
    await deps.audit.record({
      type: 'syncFence',
      actor: principal.name,
      ip: req.ip,
      result: 'failure',
      reason: 'fenced_token_refused',
      details: { installation, token, highest, method: req.method, path: pathOf(req.url) },
    });
    const message = `fencing token ${token} is lower than ${highest}: another node of this sync installation leads now; nothing was written`;
    reply.header(FENCED_HEADER, String(highest));
    if (deps.isScimPath(req.url)) {
      return reply.code(409).type('application/scim+json').send({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '409', detail: message });
    }
    throw new ApiError(409, 'FENCED', message, { [FENCED_HEADER]: String(highest) });
  });

  // A new leader raises the fence before it writes anything else (the hook above did the work).
  app.post(SYNC_FENCE_PATH, async (req) => {
    await deps.guard.authenticate(req, SCIM_ROLES);
    return { token: Number(req.headers[FENCING_TOKEN_HEADER]) };
  });

  app.get('/api/v1/syncFences', async (req) => {
    await deps.guard.authenticate(req, SCIM_ROLES);
    const rows = await deps.db.all<{ installation: string; highest: number; raised_at: string; refused: number; last_refused_at: string | null; last_refused_token: number | null }>(
      'SELECT installation, highest, raised_at, refused, last_refused_at, last_refused_token FROM sync_fences ORDER BY installation',
    );
    const fences: SyncFence[] = rows.map((r) => ({
      installation: r.installation,
      highest: Number(r.highest),
      raisedAt: r.raised_at,
      refused: Number(r.refused),
      lastRefusedAt: r.last_refused_at,
      lastRefusedToken: r.last_refused_token === null ? null : Number(r.last_refused_token),
    }));
    return { fences };
  });
}
