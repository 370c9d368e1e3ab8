/**
 * The PostgreSQL implementation of the cloud query layer (node-postgres pool). Several
 * `idsync cloud serve` nodes share one database: every row that matters (signing keys, accounts and
 * their token versions, lockout counters, audit, password hashes, SCIM resources) lives here, and
 * concurrency is the database's: unique indexes, row locks (`forUpdate`), advisory locks (`lock`),
 * and a rerun of a transaction that lost a serialization race or a deadlock.
 */
import { readFileSync } from 'node:fs';
import { checkServerIdentity, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import pg from 'pg';
import { IdsyncError } from '../../core/errors.js';
import type { Migration } from '../../store/database.js';
import { UniqueViolation, type CloudStore, type Sql } from './sql.js';

const INT8_OID = 20;
const NUMERIC_OID = 1700;
/** Serialization failure and deadlock: the transaction may simply be run again. */
const RETRYABLE = new Set(['40001', '40P01']);
const MAX_ATTEMPTS = 8;
const MAX_CACHED = 1024;

/** `?` → `$1, $2…`, outside quoted strings and identifiers. */
const converted = new Map<string, string>();
export function toPgPlaceholders(sql: string): string {
  const hit = converted.get(sql);
  if (hit !== undefined) return hit;
  let out = '';
  let n = 0;
  let quote: string | null = null;
  for (const ch of sql) {
    if (quote) {
      if (ch === quote) quote = null;
      out += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      out += ch;
    } else if (ch === '?') out += `$${++n}`;
    else out += ch;
  }
  if (converted.size >= MAX_CACHED) converted.clear();
  converted.set(sql, out);
  return out;
}

function mapError(err: unknown): unknown {
  const e = err as { code?: string; table?: string; detail?: string; constraint?: string };
  if (e.code === '23505') {
    // detail: 'Key (user_name_lc)=(…) already exists.' — only the column name is kept (the value may be personal).
    const col = /^Key \(([A-Za-z0-9_, ]+)\)=/.exec(e.detail ?? '')?.[1];
    return new UniqueViolation(e.table, col, { cause: err });
  }
  return err;
}

/** Booleans and bigints as SQLite returns them: numbers (epoch milliseconds fit a double). */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8_OID || oid === NUMERIC_OID) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  }) as typeof pg.types.getTypeParser,
};

type Queryable = pg.Pool | pg.PoolClient;

async function query<T>(q: Queryable, sql: string, params: readonly unknown[] | undefined): Promise<pg.QueryResult & { rows: T[] }> {
  try {
    return (await q.query(toPgPlaceholders(sql), params as unknown[] | undefined)) as pg.QueryResult & { rows: T[] };
  } catch (err) {
    throw mapError(err);
  }
}

function view(client: pg.PoolClient, depth: number): Sql {
  const self: Sql = {
    dialect: 'postgres',
    forUpdate: ' FOR UPDATE',
    all: async <T>(sql: string, params?: readonly unknown[]) => (await query<T>(client, sql, params)).rows,
    get: async <T>(sql: string, params?: readonly unknown[]) => (await query<T>(client, sql, params)).rows[0],
    run: async (sql: string, params?: readonly unknown[]) => (await query(client, sql, params)).rowCount ?? 0,
    lock: async (name: string) => {
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [name]);
    },
    transaction: async <T>(fn: (tx: Sql) => Promise<T>) => {
      const sp = `sp${depth}`;
      await client.query(`SAVEPOINT ${sp}`);
      try {
        const out = await fn(view(client, depth + 1));
        await client.query(`RELEASE SAVEPOINT ${sp}`);
        return out;
      } catch (err) {
        await client.query(`ROLLBACK TO SAVEPOINT ${sp}`);
        await client.query(`RELEASE SAVEPOINT ${sp}`);
        throw err;
      }
    },
  };
  return self;
}

/**
 * TLS to PostgreSQL, as libpq's sslmode names it: `require` encrypts without checking who answers;
 * `verify-full` checks the certificate against `caFile` (default: the system's CAs) and the name
 * against `serverName` (default: the URL's host).
 */
export interface PostgresTls {
  mode: 'disable' | 'require' | 'verify-full';
  caFile?: string;
  serverName?: string;
}

function sslOptions(t: PostgresTls): false | ConnectionOptions {
  if (t.mode === 'disable') return false;
  if (t.mode === 'require') return { rejectUnauthorized: false };
  let ca: Buffer | undefined;
  if (t.caFile !== undefined) {
    try {
      ca = readFileSync(t.caFile);
    } catch (err) {
      throw new IdsyncError('CONFIG_INVALID', `cannot read the database CA file ${t.caFile}: ${(err as Error).message}`, { hint: 'Give --database-ca a PEM file this user can read.' });
    }
  }
  const name = t.serverName;
  return {
    rejectUnauthorized: true,
    ...(ca ? { ca } : {}),
    // node-postgres sets the SNI name from the host; the identity check uses the name asked for.
    ...(name !== undefined ? { checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(name, cert) } : {}),
  };
}

export class PostgresStore implements CloudStore {
  readonly dialect = 'postgres' as const;
  readonly forUpdate = ' FOR UPDATE';
  readonly location: string;

  private constructor(
    private readonly pool: pg.Pool,
    location: string,
  ) {
    this.location = location;
  }

  /**
   * Connects and migrates. `password` (from the environment or the credential store) overrides one
   * in the URL; neither is ever part of `location` or of an error message.
   */
  static async open(url: string, migrations: Migration[], options: { password?: string; max?: number; tls?: PostgresTls } = {}): Promise<PostgresStore> {
    let location: string;
    let connectionString = url;
    try {
      const u = new URL(url);
      // node-postgres lets the URL's fields override separate options: put the password in the URL.
      if (options.password !== undefined) {
        u.password = encodeURIComponent(options.password);
        connectionString = u.toString();
      }
      if (u.password) u.password = '***';
      location = u.toString();
    } catch {
      throw new IdsyncError('CONFIG_INVALID', 'the cloud database URL is not a valid postgres:// URL', { hint: 'Give --database postgres://USER@HOST:PORT/DATABASE (the password in $IDSYNC_CLOUD_DATABASE_PASSWORD).' });
    }
    const pool = new pg.Pool({
      connectionString,
      ...(options.tls ? { ssl: sslOptions(options.tls) } : {}),
      max: options.max ?? 10,
      types,
      application_name: 'idsync-cloud',
    });
    // An idle client that errors (the server restarted) must not crash the process.
    pool.on('error', () => undefined);
    const store = new PostgresStore(pool, location);
    try {
      await store.migrate(migrations);
    } catch (err) {
      await pool.end().catch(() => undefined);
      const e = err as { code?: string; message?: string };
      throw new IdsyncError('STORE_FAILED', `cannot open the cloud database ${location}: ${e.code === '28P01' ? 'password authentication failed' : (e.message ?? String(err)).replaceAll(options.password ?? '\u0000', '***')}`, {
        hint: options.tls
          ? 'Check the URL, that PostgreSQL is reachable and speaks TLS, the CA file and server name (--database-ca, --database-server-name), and the password.'
          : 'Check the URL, that PostgreSQL is reachable, and the password ($IDSYNC_CLOUD_DATABASE_PASSWORD or `idsync cloud credentials set database`).',
      });
    }
    return store;
  }

  /**
   * Applies pending migrations once, however many nodes start at the same moment. Its own table
   * (not store/'s schema_migrations): one owner per table, test/store/table-owners.test.ts.
   */
  private async migrate(migrations: Migration[]): Promise<void> {
    await this.transaction(async (tx) => {
      await tx.lock('idsync-cloud-migrations');
      await tx.run('CREATE TABLE IF NOT EXISTS cloud_schema_migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)');
      const applied = new Set((await tx.all<{ id: string }>('SELECT id FROM cloud_schema_migrations')).map((r) => r.id));
      for (const m of migrations) {
        if (applied.has(m.id)) continue;
        await tx.run(m.sql);
        await tx.run('INSERT INTO cloud_schema_migrations (id, applied_at) VALUES (?, ?)', [m.id, new Date().toISOString()]);
      }
    });
  }

  async all<T>(sql: string, params?: readonly unknown[]): Promise<T[]> {
    return (await query<T>(this.pool, sql, params)).rows;
  }

  async get<T>(sql: string, params?: readonly unknown[]): Promise<T | undefined> {
    return (await query<T>(this.pool, sql, params)).rows[0];
  }

  async run(sql: string, params?: readonly unknown[]): Promise<number> {
    return (await query(this.pool, sql, params)).rowCount ?? 0;
  }

  async lock(): Promise<void> {
    throw new Error('lock() needs a transaction');
  }

  async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      let broken = false;
      try {
        await client.query('BEGIN');
        const out = await fn(view(client, 0));
        await client.query('COMMIT');
        return out;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        const code = ((err as { cause?: { code?: string } }).cause ?? (err as { code?: string })).code;
        if (code && RETRYABLE.has(code) && attempt < MAX_ATTEMPTS) {
          await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
          continue;
        }
        throw err;
      } finally {
        client.release(broken);
      }
    }
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
