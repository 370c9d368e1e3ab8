import type { PgConnectOptions } from '../../store/postgres/protocol.js';

/** What the lease's main-thread side (lease.ts) and its worker (lease-worker.ts) say to each other. */

export interface LeaseWorkerData {
  /** The store's connection (store/postgres/open.ts connectOptions): the password never printed. */
  connection: PgConnectOptions;
  /** Unique per process: node name and a random instance id (a restarted node starts a new term). */
  holder: string;
  node: string;
  ttlMs: number;
  renewMs: number;
  /** Float64Array(2): [token held (0: none), local deadline of the term (monotonic ms)]. */
  state: SharedArrayBuffer;
}

export interface ObservedLeader {
  holder: string;
  node: string;
  token: number;
  expiresAt: string;
  /** False when the lease has expired and nobody took it yet. */
  live: boolean;
}

/** A node as it last said in ha_nodes. */
export interface HaNode {
  node: string;
  holder: string;
  url: string | null;
  pid: number;
  role: 'leader' | 'standby';
  token: number | null;
  startedAt: string;
  seenAt: string;
  /** Seconds since it last said so, by the database's clock. */
  silentSeconds: number;
}

export type LeaseWorkerMessage =
  | { kind: 'acquired'; token: number; previousHolder: string | null; expiresAt: string }
  | { kind: 'lost'; token: number; reason: string }
  | { kind: 'observed'; leader: ObservedLeader | null; nodes: HaNode[] }
  | { kind: 'unreachable'; error: string }
  | { kind: 'reachable' }
  | { kind: 'stopped' };

export type ToLeaseWorker = { kind: 'describe'; url: string | null } | { kind: 'drop'; token: number; reason: string } | { kind: 'stop'; release: boolean };

/** The monotonic clock, in ms; one clock for every thread of the process (CLOCK_MONOTONIC). */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}
