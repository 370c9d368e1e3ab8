/**
 * Which sync installations write to this tenant. Every successful SCIM write by a sync principal is
 * recorded under the installation that made it (the `x-idsync-installation` header idsync sends,
 * else the client or account name), so a second installation can learn, before its first export,
 * that another one already exports here (issue 11: two servers silently sharing one tenant made
 * "5 added" reports while nothing was added). Read with GET /api/v1/syncInstallations.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Principal } from '../accounts/store.js';
import { SCIM_ROLES } from '../accounts/roles.js';
import type { Guard } from '../auth/guard.js';
import type { Migration } from '../../store/database.js';
import type { Sql } from '../store/sql.js';

export const INSTALLATION_HEADER = 'x-idsync-installation';

export const syncInstallationMigrations: Migration[] = [
  {
    id: 'cloud/sync-installations-001',
    sql: `
CREATE TABLE sync_installations (
  installation TEXT PRIMARY KEY,
  principal    TEXT NOT NULL,
  first_write  TEXT NOT NULL,
  last_write   TEXT NOT NULL,
  writes       INTEGER NOT NULL
);
`,
  },
];

export const syncInstallationPgMigrations: Migration[] = [
  {
    id: 'cloud/sync-installations-001',
    sql: `
CREATE TABLE sync_installations (
  installation TEXT COLLATE "C" PRIMARY KEY,
  principal    TEXT NOT NULL,
  first_write  TEXT NOT NULL,
  last_write   TEXT COLLATE "C" NOT NULL,
  writes       INTEGER NOT NULL
);
`,
  },
];

export interface SyncInstallation {
  installation: string;
  /** The sync client or account it signed in as. */
  principal: string;
  firstWrite: string;
  lastWrite: string;
  /** Successful SCIM writes (requests, not objects). */
  writes: number;
}

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const ID_RE = /^[A-Za-z0-9._:-]{1,100}$/;

/**
 * After an installation's first write on this node, its later writes are counted in memory and
 * written at most every FLUSH_MS (and before a read, and at close): a sync cycle sends a Bulk
 * request every few milliseconds, and a main-thread write per request made the SCIM worker step
 * aside each time (scim/host/write-intent.ts). A crash loses at most that much of the count.
 */
const FLUSH_MS = 1000;

export function registerSyncInstallations(app: FastifyInstance, deps: { db: Sql; guard: Guard; now: () => number; isScimPath: (url: string) => boolean }): void {
  const upsert = `INSERT INTO sync_installations (installation, principal, first_write, last_write, writes) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (installation) DO UPDATE SET principal = excluded.principal, last_write = excluded.last_write, writes = sync_installations.writes + excluded.writes`;
  const installationOf = (req: FastifyRequest, principal: Principal): string => {
    const h = req.headers[INSTALLATION_HEADER];
    return typeof h === 'string' && ID_RE.test(h) ? h : `${principal.kind}:${principal.name}`;
  };
  /** Installations this node has recorded; writes counted since the last flush. */
  const recorded = new Set<string>();
  const pending = new Map<string, { principal: string; first: string; last: string; writes: number }>();
  let timer: NodeJS.Timeout | undefined;
  const flush = async (): Promise<void> => {
    clearTimeout(timer);
    timer = undefined;
    for (const [installation, p] of [...pending]) {
      pending.delete(installation);
      await deps.db.run(upsert, [installation, p.principal, p.first, p.last, p.writes]);
    }
  };

  app.addHook('onResponse', async (req, reply) => {
    if (!WRITE_METHODS.has(req.method) || reply.statusCode >= 300 || !deps.isScimPath(req.url)) return;
    let principal: Principal;
    try {
      principal = await deps.guard.authenticate(req, SCIM_ROLES); // cached per request by the guard
    } catch {
      return;
    }
    // An administrator's hand edit is not an installation exporting to the tenant.
    if (principal.role !== 'DirectorySynchronizationAccounts') return;
    const installation = installationOf(req, principal);
    const now = new Date(deps.now()).toISOString();
    if (!recorded.has(installation)) {
      // The first write is recorded at once: another installation must be able to see it before its first export.
      await deps.db.run(upsert, [installation, principal.name, now, now, 1]);
      recorded.add(installation);
      return;
    }
    const p = pending.get(installation);
    if (p) {
      p.principal = principal.name;
      p.last = now;
      p.writes++;
    } else pending.set(installation, { principal: principal.name, first: now, last: now, writes: 1 });
    timer ??= setTimeout(() => void flush().catch((err: unknown) => app.log.error({ err }, 'recording sync installations failed')), FLUSH_MS).unref();
  });
  app.addHook('onClose', async () => flush());

  app.get('/api/v1/syncInstallations', async (req) => {
    await deps.guard.authenticate(req, SCIM_ROLES);
    await flush();
    const rows = await deps.db.all<{ installation: string; principal: string; first_write: string; last_write: string; writes: number }>(
      'SELECT installation, principal, first_write, last_write, writes FROM sync_installations ORDER BY last_write DESC',
    );
    const installations: SyncInstallation[] = rows.map((r) => ({ installation: r.installation, principal: r.principal, firstWrite: r.first_write, lastWrite: r.last_write, writes: r.writes }));
    return { installations };
  });
}
