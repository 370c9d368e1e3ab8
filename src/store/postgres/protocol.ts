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

export type PgRequest =
  | { op: 'query'; text: string; values: unknown[]; name?: string; rowMode: 'array' | 'object'; ignoreConflicts: boolean; inTransaction: boolean }
  | { op: 'script'; sql: string }
  | { op: 'close' };

export interface PgFailure {
  message: string;
  /** SQLSTATE, e.g. 23505. */
  code?: string;
  table?: string;
  constraint?: string;
}

export type PgResponse =
  | { ok: true; rows: unknown[]; rowCount: number; fields: string[] }
  | { ok: false; error: PgFailure };

/** Handed to the worker at start: where to connect and the shared flag it signals on. */
export interface PgWorkerData {
  connect: PgConnectOptions;
  flag: SharedArrayBuffer;
  port: MessagePort;
}
