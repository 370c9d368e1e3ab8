/**
 * The cloud directory's one query layer: an async, transaction-aware SQL executor with two
 * implementations, SQLite (better-sqlite3, the embedded default: sqlite.ts) and PostgreSQL
 * (node-postgres, for several nodes on one database: postgres.ts). Modules write their SQL once,
 * with `?` placeholders, in the subset both engines speak (ON CONFLICT … DO NOTHING/UPDATE,
 * RETURNING, CTEs); where they differ a module branches on `dialect`, and each module keeps one
 * migration list per engine. Why one layer rather than two implementations per module:
 * docs/cloud-directory.md#postgresql.
 */
export type Dialect = 'sqlite' | 'postgres';

export interface TransactionOptions {
  /**
   * Only reads (one consistent snapshot). On SQLite the outermost transaction is otherwise BEGIN
   * IMMEDIATE: the SCIM worker writes cloud.db through a connection of its own, and a deferred
   * transaction that read before that commit would fail its first write at once
   * (SQLITE_BUSY_SNAPSHOT) instead of waiting. A read-only one is deferred and takes no write lock.
   */
  readOnly?: boolean;
}

export interface Sql {
  readonly dialect: Dialect;
  all<T>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  get<T>(sql: string, params?: readonly unknown[]): Promise<T | undefined>;
  /** Runs a write; resolves to the number of rows it changed. */
  run(sql: string, params?: readonly unknown[]): Promise<number>;
  /**
   * Runs `fn` in a transaction (a savepoint when this is already one): committed when it resolves,
   * rolled back when it throws. On PostgreSQL a serialization failure or deadlock at the outermost
   * level reruns `fn`, so `fn` must only change the database (and locals) before it returns.
   */
  transaction<T>(fn: (tx: Sql) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /**
   * Serialises transactions that take the same named lock, until the transaction ends (a no-op on
   * SQLite, where a write transaction is exclusive already). Only inside a transaction.
   */
  lock(name: string): Promise<void>;
  /** ' FOR UPDATE' on PostgreSQL (locks the rows read, inside a transaction), '' on SQLite. */
  readonly forUpdate: string;
}

export interface CloudStore extends Sql {
  /** A cheap round trip, for /healthz. */
  ping(): Promise<void>;
  close(): Promise<void>;
  /** Where it is, for logs: a file path or a URL without its password. */
  readonly location: string;
}

/** A write that broke a unique index. `column` is the indexed column when the engine says. */
export class UniqueViolation extends Error {
  constructor(
    readonly table: string | undefined,
    readonly column: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(`unique constraint violated${table ? ` on ${table}${column ? `.${column}` : ''}` : ''}`, options);
    this.name = 'UniqueViolation';
  }
}
