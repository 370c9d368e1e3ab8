import type { MessagePort } from 'node:worker_threads';

/** Messages between the synchronous PostgreSQL bridge (bridge.ts) and its worker thread (worker.ts). */

export interface PgConnectOptions {
  host: string;
  port: number;
  database: string;
  user: string;
  password?: string | undefined;
  /** node-postgres `ssl`: false, or the TLS options (CA, client certificate, verification). */
  ssl: false | { ca?: string; cert?: string; key?: string; rejectUnauthorized: boolean; servername?: string };
  applicationName: string;
}

export interface PgQuery {
  op: 'query';
  text: string;
  values: unknown[];
  name?: string;
  rowMode: 'array' | 'object';
  ignoreConflicts: boolean;
  inTransaction: boolean;
}

export interface PgScript {
  op: 'script';
  sql: string;
}

/**
 * Statements sent to the worker in one message (bridge.ts, deferred writes), run in order: the
 * answer carries each one's row count, the last one's rows, and on failure the index of the
 * statement that failed (the ones after it are not run: the transaction is aborted).
 */
export interface PgBatch {
  op: 'batch';
  items: (PgQuery | PgScript)[];
}

export type PgRequest = PgQuery | PgScript | PgBatch | { op: 'close' };

export interface PgFailure {
  message: string;
  /** SQLSTATE, e.g. 23505. */
  code?: string;
  table?: string;
  constraint?: string;
  /** The connection could not be made or was lost (not the statement's fault): the store is unreachable. */
  lost?: boolean;
}

export type PgResponse =
  | { ok: true; rows: unknown[]; rowCount: number; fields: string[]; rowCounts?: number[] }
  | { ok: false; error: PgFailure; index?: number; rowCounts?: number[] };

/** Handed to the worker at start: where to connect and the shared flag it signals on. */
export interface PgWorkerData {
  connect: PgConnectOptions;
  flag: SharedArrayBuffer;
  port: MessagePort;
}
