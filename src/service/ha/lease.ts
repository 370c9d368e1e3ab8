/**
 * The leader lease of several `idsync serve` nodes on one PostgreSQL (docs/ha.md).
 *
 * One row in PostgreSQL names the holder, a fencing token that only grows, and an expiry by the
 * database's clock. A worker thread (lease-worker.ts) acquires or renews it every `renewMs`, so a
 * main thread blocked by a long query cannot let it lapse, and a node that stops renewing (killed,
 * paused, cut off) loses it `ttlMs` after its last renewal; a standby, polling at the same pace,
 * takes it with the next token. The node learns of its own loss from shared memory at once
 * (`fence().assertHeld()`); every write of a cycle or a delivery is also checked where it lands:
 * in the database (the fence's `check` in each write transaction) and at the cloud directory (the
 * token header, refused when lower than the highest the cloud has seen).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { moduleWorker } from '../../core/module-worker.js';
import { IdsyncError } from '../../core/errors.js';
import type { WriteFence } from '../../store/fence.js';
import { FENCE_CHECK_SQL } from './lease-sql.js';
import type { PgConnectOptions } from '../../store/postgres/protocol.js';
import { monotonicMs, type HaNode, type LeaseWorkerData, type LeaseWorkerMessage, type ObservedLeader, type ToLeaseWorker } from './lease-protocol.js';

export type { HaNode, ObservedLeader } from './lease-protocol.js';

export const DEFAULT_LEASE_TTL_MS = 5000;
export const DEFAULT_LEASE_RENEW_MS = 1000;

export interface LeaseOptions {
  /** Where the store is (store/postgres/open.ts connectOptions). */
  connection: PgConnectOptions;
  /** This node's name (default: the host name). Shown in status and events. */
  node?: string;
  /** How long a lease lasts without renewal (default 5 s). A standby takes over within ttl + renew. */
  ttlMs?: number;
  /** How often the holder renews and a standby tries (default 1 s); at most a third of ttlMs. */
  renewMs?: number;
}

export type LeaseChange =
  | { kind: 'acquired'; token: number; previousHolder: string | null; expiresAt: string }
  | { kind: 'lost'; token: number; reason: string }
  | { kind: 'unreachable'; error: string }
  | { kind: 'reachable' };

export class LeaderLease {
  readonly node: string;
  /** Unique per process: a restarted node is a new holder and starts a new term. */
  readonly holder: string;
  readonly ttlMs: number;
  readonly renewMs: number;
  private readonly state = new Float64Array(new SharedArrayBuffer(16));
  private worker: Worker | undefined;
  private observed: ObservedLeader | null = null;
  private nodeList: HaNode[] = [];
  private listeners: ((c: LeaseChange) => void)[] = [];
  private stopped: Promise<void> | undefined;
  private acquiredAt: string | null = null;
  private url: string | null | undefined;

  constructor(private readonly opts: LeaseOptions) {
    this.node = opts.node ?? hostname();
    this.holder = `${this.node}/${randomUUID().slice(0, 8)}`;
    this.ttlMs = opts.ttlMs ?? DEFAULT_LEASE_TTL_MS;
    this.renewMs = opts.renewMs ?? DEFAULT_LEASE_RENEW_MS;
    if (!(this.ttlMs >= 1000) || !(this.renewMs >= 100) || this.renewMs * 3 > this.ttlMs) {
      throw new IdsyncError('CONFIG_INVALID', `the lease time (${this.ttlMs} ms) must be at least 1 s and three renewals (${this.renewMs} ms each) long`, {
        hint: 'e.g. ha: { leaseTtl: 5s, renewInterval: 1s }',
      });
    }
  }

  /** Called on the main thread for each change of this node's role and each outage of the database. */
  onChange(fn: (c: LeaseChange) => void): void {
    this.listeners.push(fn);
  }

  start(): void {
    if (this.worker) return;
    const data: LeaseWorkerData = {
      connection: this.opts.connection,
      holder: this.holder,
      node: this.node,
      ttlMs: this.ttlMs,
      renewMs: this.renewMs,
      state: this.state.buffer as SharedArrayBuffer,
    };
    const w = spawnWorker(data);
    w.unref();
    w.on('message', (m: LeaseWorkerMessage) => this.onMessage(m));
    if (this.url !== undefined) w.postMessage({ kind: 'describe', url: this.url } satisfies ToLeaseWorker);
    w.on('error', (err) => {
      // The worker died: whatever this node held, it cannot renew it any more.
      const token = this.state[0]!;
      this.state[0] = 0;
      if (token !== 0) this.emit({ kind: 'lost', token, reason: `the lease worker failed: ${err.message}` });
    });
    this.worker = w;
  }

  private onMessage(m: LeaseWorkerMessage): void {
    switch (m.kind) {
      case 'observed':
        this.observed = m.leader;
        this.nodeList = m.nodes;
        return;
      case 'acquired':
        this.acquiredAt = new Date().toISOString();
        this.emit(m);
        return;
      case 'lost':
        this.acquiredAt = null;
        this.emit(m);
        return;
      case 'unreachable':
      case 'reachable':
        this.emit(m);
        return;
      case 'stopped':
        return;
    }
  }

  private emit(c: LeaseChange): void {
    for (const fn of this.listeners) fn(c);
  }

  /** The token this node holds now, by its own clock; 0 when it is not the leader. */
  get token(): number {
    const t = this.state[0]!;
    return t !== 0 && monotonicMs() < this.state[1]! ? t : 0;
  }

  get isLeader(): boolean {
    return this.token !== 0;
  }

  /** The holder of the lease as the worker last read it (any node). */
  get leader(): ObservedLeader | null {
    return this.observed;
  }

  /** Every node heard of lately (ha_nodes), as the worker last read them. */
  get nodes(): HaNode[] {
    return this.nodeList;
  }

  /** The time this node last became the leader (ISO), while it is. */
  get leaderSince(): string | null {
    return this.isLeader ? this.acquiredAt : null;
  }

  /** Tells the worker where this node's status is served (shown by `service status` on every node). */
  describe(url: string | null): void {
    this.url = url;
    this.post({ kind: 'describe', url });
  }

  /**
   * The fence of the term this node holds now; undefined when it is not the leader. Work started
   * under it keeps the term's token: once the term ends, its writes are refused.
   */
  fence(): WriteFence | undefined {
    const token = this.token;
    if (token === 0) return undefined;
    const holder = this.holder;
    return {
      token,
      holder,
      check: { sql: FENCE_CHECK_SQL, params: [holder, token] },
      assertHeld: () => {
        if (this.state[0] === token && monotonicMs() < this.state[1]!) return;
        throw new IdsyncError('LEASE_LOST', `node ${this.node} no longer holds the leader lease (token ${token}); the write was not made`, {
          hint: 'Another node leads now (`idsync service status`); this node goes on as a standby.',
          details: { node: this.node, token },
        });
      },
    };
  }

  /** Gives up the term (e.g. the cloud refused its token): the worker stops renewing it. */
  drop(token: number, reason: string): void {
    this.post({ kind: 'drop', token, reason });
  }

  /** Stops renewing; `release` ends a held lease at once so that a standby takes over without waiting. */
  stop(release = true): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      const w = this.worker;
      if (!w) return resolve();
      const timer = setTimeout(() => void w.terminate().then(() => resolve()), 5000);
      w.on('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      w.postMessage({ kind: 'stop', release } satisfies ToLeaseWorker);
    });
    return this.stopped;
  }

  private post(m: ToLeaseWorker): void {
    this.worker?.postMessage(m);
  }
}

/** The lease's worker thread (lease-worker.ts). */
function spawnWorker(workerData: LeaseWorkerData): Worker {
  return moduleWorker(import.meta.url, 'lease-worker', { workerData });
}
