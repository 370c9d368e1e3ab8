/**
 * Opens the sync service's store on PostgreSQL: the URL and TLS options into node-postgres's
 * connection options (the password never in the URL that is printed), then the bridge, then the
 * migrations under an advisory lock, so several nodes starting at once apply each one once.
 */
import { IdsyncError } from '../../core/errors.js';
import { PgDatabase, PgStatementError } from './bridge.js';
import { COMPAT_SQL, translateDdl } from './dialect.js';
import type { PgConnectOptions } from './protocol.js';
import { withoutSecret } from '../../core/secret-text.js';

export interface PostgresTls {
  /** PEM of the CA(s) the server's certificate must chain to (default: the system's). */
  ca?: string | undefined;
  /** PEM client certificate and key, for servers that ask for one. */
  cert?: string | undefined;
  key?: string | undefined;
  /** Host name the certificate must name, when it is not the URL's host. */
  servername?: string | undefined;
  /** Verify the server's certificate (default true; false only for a lab). */
  verify?: boolean | undefined;
}

export interface PostgresStoreOptions {
  /** postgres://USER@HOST:PORT/DATABASE; `?sslmode=disable|require|verify-full`; `?host=/run/postgresql` for a unix socket. */
  url: string;
  /** Overrides a password in the URL. Never printed. */
  password?: string | undefined;
  /** TLS: omitted = plain unless the URL says sslmode=require/verify-*. */
  tls?: PostgresTls | undefined;
  applicationName?: string | undefined;
}

/** The URL with its password masked: what messages and `doctor` may show. */
export function maskedLocation(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(invalid URL)';
  }
}

export function connectOptions(opts: PostgresStoreOptions): PgConnectOptions {
  let u: URL;
  try {
    u = new URL(opts.url);
  } catch {
    throw new IdsyncError('CONFIG_INVALID', 'store.url is not a valid postgres:// URL', { hint: 'Write it as postgres://USER@HOST:5432/DATABASE (the password in $IDSYNC_STORE_PASSWORD or store.passwordFile).' });
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new IdsyncError('CONFIG_INVALID', `store.url must start with postgres://, not ${u.protocol}//`, { hint: 'Write it as postgres://USER@HOST:5432/DATABASE.' });
  }
  const q = u.searchParams;
  const sslmode = q.get('sslmode') ?? (opts.tls ? 'verify-full' : 'disable');
  const tls = opts.tls ?? {};
  const ssl: PgConnectOptions['ssl'] =
    sslmode === 'disable' || sslmode === 'allow' || sslmode === 'prefer'
      ? false
      : {
          rejectUnauthorized: sslmode === 'require' && !opts.tls ? false : tls.verify !== false,
          ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
          ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
          ...(tls.key !== undefined ? { key: tls.key } : {}),
          ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
        };
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  const user = decodeURIComponent(u.username);
  if (!database || !user) {
    throw new IdsyncError('CONFIG_INVALID', 'store.url must name the user and the database: postgres://USER@HOST:5432/DATABASE', { hint: 'Add the user before @ and the database after the port.' });
  }
  const password = opts.password ?? (u.password ? decodeURIComponent(u.password) : undefined);
  return {
    host: q.get('host') ?? (u.hostname.replace(/^\[|\]$/g, '') || 'localhost'),
    port: u.port ? Number(u.port) : 5432,
    database,
    user,
    ...(password !== undefined ? { password } : {}),
    ssl,
    applicationName: opts.applicationName ?? 'idsync',
  };
}

interface Migration {
  id: string;
  sql: string;
  postgres?: string | undefined;
}

/**
 * The functions the translated statements use (dialect.ts COMPAT_SQL), created once, as the first
 * migration: replacing them at every open would take catalog locks under a running service (a
 * concurrent CREATE OR REPLACE FUNCTION fails with "tuple concurrently updated").
 */
const COMPAT_MIGRATION: Migration = { id: 'store/pg-001-sqlite-compat', sql: '', postgres: COMPAT_SQL };

/** Applies pending migrations once, however many nodes start at the same moment. */
export function migratePostgres(db: PgDatabase, migrations: readonly Migration[]): void {
  if (migrations.length === 0) return;
  const all = [COMPAT_MIGRATION, ...migrations];
  // Nothing to do (every open of a running installation): no lock, no DDL.
  if (db.prepare("SELECT to_regclass('schema_migrations') IS NOT NULL").pluck().get() === 1) {
    const applied = new Set(db.prepare('SELECT id FROM schema_migrations').pluck().all() as string[]);
    if (all.every((m) => applied.has(m.id))) return;
  }
  db.transaction(() => {
    db.script("SELECT pg_advisory_xact_lock(hashtext('idsync-sync-migrations'))");
    db.script('CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)');
    const applied = new Set(db.prepare('SELECT id FROM schema_migrations').pluck().all() as string[]);
    const insert = db.prepare('INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)');
    for (const m of all) {
      if (applied.has(m.id)) continue;
      db.script(m.postgres ?? translateDdl(m.sql));
      insert.run(m.id, new Date().toISOString());
    }
  })();
}

export function openPostgresDatabase(opts: PostgresStoreOptions, migrations: readonly Migration[]): PgDatabase {
  const location = maskedLocation(opts.url);
  const connect = connectOptions(opts);
  let db: PgDatabase;
  try {
    db = new PgDatabase(connect, location);
  } catch (err) {
    // The server's own error (its SQLSTATE), also when it came as "cannot be reached".
    const e = (err instanceof IdsyncError && err.cause instanceof PgStatementError ? err.cause : err) as PgStatementError;
    const why = e.code === '28P01' ? 'password authentication failed' : scrub(e.message, connect.password);
    throw new IdsyncError('STORE_FAILED', `cannot open the PostgreSQL store ${location}: ${why}`, {
      hint: 'Check store.url, that PostgreSQL is reachable, its TLS settings (store.tls), and the password ($IDSYNC_STORE_PASSWORD or store.passwordFile).',
    });
  }
  try {
    migratePostgres(db, migrations);
  } catch (err) {
    db.close();
    throw new IdsyncError('STORE_FAILED', `cannot migrate the PostgreSQL store ${location}: ${scrub((err as Error).message, connect.password)}`, {
      hint: 'The role in store.url must be allowed to create tables and functions in its database (its owner, typically).',
      cause: err,
    });
  }
  return db;
}

const scrub = withoutSecret;

export { PgDatabase, PgStatementError };
