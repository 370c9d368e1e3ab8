/**
 * The SQLite implementation of the cloud query layer, over one better-sqlite3 connection. Its calls
 * run synchronously and resolve at once; a transaction holds the connection across its awaits, so
 * other callers queue behind it (one connection has one transaction: without the queue a write of
 * another request would join it and share its fate).
 */
import type { Statement } from 'better-sqlite3';
import type { Database } from '../../store/database.js';
import { UniqueViolation, type CloudStore, type Sql, type TransactionOptions } from './sql.js';

const MAX_CACHED_STATEMENTS = 512;

function mapError(err: unknown): unknown {
  const e = err as { code?: string; message?: string };
  if (e.code === 'SQLITE_CONSTRAINT_UNIQUE' || e.code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
    // "UNIQUE constraint failed: scim_users.user_name_lc"
    const m = /failed: ([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)/.exec(e.message ?? '');
    return new UniqueViolation(m?.[1], m?.[2], { cause: err });
  }
  return err;
}

export class SqliteStore implements CloudStore {
  readonly dialect = 'sqlite' as const;
  readonly forUpdate = '';
  private readonly statements = new Map<string, Statement>();
  /** The transaction holding the connection, if any; callers outside it wait for `idle`. */
  private active: Promise<void> | undefined;
  private depth = 0;

  constructor(
    readonly db: Database,
    private readonly closeDb = true,
  ) {
    // SQLite's lower() folds ASCII only; case-insensitive filters need full Unicode folding.
    db.function('scim_lower', { deterministic: true }, (s: unknown) => (typeof s === 'string' ? s.toLowerCase() : s));
  }

  get location(): string {
    return this.db.name;
  }

  stmt(sql: string): Statement {
    let s = this.statements.get(sql);
    if (!s) {
      // Filters make the SQL text vary; keep the cache bounded.
      if (this.statements.size >= MAX_CACHED_STATEMENTS) this.statements.clear();
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  allNow<T>(sql: string, params: readonly unknown[] = []): T[] {
    const s = this.stmt(sql);
    return (s.reader ? s.all(...params) : (s.run(...params), [])) as T[];
  }

  getNow<T>(sql: string, params: readonly unknown[] = []): T | undefined {
    return this.stmt(sql).get(...params) as T | undefined;
  }

  runNow(sql: string, params: readonly unknown[] = []): number {
    try {
      return this.stmt(sql).run(...params).changes;
    } catch (err) {
      throw mapError(err);
    }
  }

  private async wait(): Promise<void> {
    while (this.active) await this.active;
  }

  async all<T>(sql: string, params?: readonly unknown[]): Promise<T[]> {
    if (this.active) await this.wait();
    return this.allNow<T>(sql, params);
  }

  async get<T>(sql: string, params?: readonly unknown[]): Promise<T | undefined> {
    if (this.active) await this.wait();
    return this.stmt(sql).get(...(params ?? [])) as T | undefined;
  }

  async run(sql: string, params?: readonly unknown[]): Promise<number> {
    if (this.active) await this.wait();
    return this.runNow(sql, params);
  }

  async lock(): Promise<void> {}

  async transaction<T>(fn: (tx: Sql) => Promise<T>, options?: TransactionOptions): Promise<T> {
    if (this.active) await this.wait();
    let release!: () => void;
    this.active = new Promise<void>((r) => (release = r));
    try {
      return await this.inTransaction(fn, options?.readOnly === true);
    } finally {
      this.active = undefined;
      release();
    }
  }

  /** BEGIN IMMEDIATE (BEGIN when read-only; a SAVEPOINT when nested) around `fn`, on the held connection. */
  private async inTransaction<T>(fn: (tx: Sql) => Promise<T>, readOnly = false): Promise<T> {
    const level = this.depth++;
    const sp = `sp${level}`;
    this.stmt(level > 0 ? `SAVEPOINT ${sp}` : readOnly ? 'BEGIN' : 'BEGIN IMMEDIATE').run();
    try {
      const out = await fn(this.txView);
      this.stmt(level === 0 ? 'COMMIT' : `RELEASE ${sp}`).run();
      return out;
    } catch (err) {
      if (this.db.inTransaction) {
        if (level === 0) this.stmt('ROLLBACK').run();
        else {
          this.stmt(`ROLLBACK TO ${sp}`).run();
          this.stmt(`RELEASE ${sp}`).run();
        }
      }
      throw err;
    } finally {
      this.depth--;
    }
  }

  /** What a transaction's callback gets: the same connection, without the queue. */
  private readonly txView: Sql = {
    dialect: 'sqlite',
    forUpdate: '',
    all: async <T>(sql: string, params?: readonly unknown[]) => this.allNow<T>(sql, params),
    get: async <T>(sql: string, params?: readonly unknown[]) => this.stmt(sql).get(...(params ?? [])) as T | undefined,
    run: async (sql: string, params?: readonly unknown[]) => this.runNow(sql, params),
    transaction: <T>(fn: (tx: Sql) => Promise<T>) => this.inTransaction(fn),
    lock: async () => {},
  };

  async ping(): Promise<void> {
    this.stmt('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.active) await this.wait();
    if (this.closeDb && this.db.open) this.db.close();
  }
}
