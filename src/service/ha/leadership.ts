/**
 * A node's role among several `idsync serve` nodes on one PostgreSQL (docs/ha.md): the leader runs
 * the sync cycles, password delivery and the DRS pollers under its lease's fence; a standby serves
 * status and accepts password change notifications and agent batches into the shared outbox, and
 * takes over when the lease comes free. This class turns the lease's changes into starting and
 * stopping those duties, one change at a time, and says so (events 6550–6553).
 */
import { toIdsyncError } from '../../core/errors.js';
import { EVENTS, type EventDefinition } from '../../events/catalog.js';
import type { EventLog } from '../../events/log.js';
import { runFenced, type WriteFence } from '../../store/fence.js';
import type { HaNode, LeaderLease, LeaseChange, ObservedLeader } from './lease.js';

/** What the leader does; the service supplies it. */
export interface LeaderDuties {
  /** Before anything else of a new term: tell the cloud directory the new token (the fence goes up). */
  announce(fence: WriteFence): Promise<void>;
  /** Starts the cycles, delivery and pollers (called under the fence). */
  start(): void;
  /** Stops them; work in flight finds its writes refused. */
  stop(): Promise<void>;
}

export interface HaStatus {
  node: string;
  holder: string;
  role: 'leader' | 'standby';
  /** This node's token while it leads. */
  token: number | null;
  leaderSince: string | null;
  /** The lease as last read: who holds it, its token and expiry (by the database's clock). */
  leader: ObservedLeader | null;
  leaseTtlMs: number;
  /** Every node heard of lately, with its role as it last said. */
  nodes: HaNode[];
  /** Terms this node started, and terms it lost, since it started. */
  takeovers: number;
  leaseLost: number;
  /** Set while the lease worker cannot reach PostgreSQL. */
  storeUnreachable: string | null;
}

export class Leadership {
  private chain: Promise<void> = Promise.resolve();
  private leading = false;
  private takeovers = 0;
  private lost = 0;
  private unreachable: string | null = null;
  private readonly listeners: ((s: 'leader' | 'standby') => void)[] = [];

  constructor(
    readonly lease: LeaderLease,
    private readonly events: EventLog,
    private readonly duties: LeaderDuties,
    private readonly log: (level: 'info' | 'warn' | 'error', msg: string) => void,
  ) {
    lease.onChange((c) => {
      this.chain = this.chain.then(() => this.onChange(c)).catch((err: unknown) => this.log('error', `high availability: ${toIdsyncError(err).message}`));
    });
  }

  /** Called after each change of role (metrics, health). */
  onRole(fn: (s: 'leader' | 'standby') => void): void {
    this.listeners.push(fn);
  }

  start(): void {
    this.lease.start();
  }

  /** Stops leading (if it does) and the lease; `release` lets a standby take over at once. */
  async stop(): Promise<void> {
    await this.chain;
    if (this.leading) {
      this.leading = false;
      await this.duties.stop();
    }
    await this.lease.stop(true);
  }

  /**
   * A write of this node was refused for its token (by the cloud, or by the database): another node
   * leads. The term is given up at once rather than at its next renewal.
   */
  fenced(token: number, by: string, highest?: number): void {
    this.emit(EVENTS.HA_FENCED, { node: this.lease.node, token, by, highest: highest ?? 'a newer token' });
    this.lease.drop(token, `a write was refused for its token (${by})`);
  }

  private async onChange(c: LeaseChange): Promise<void> {
    switch (c.kind) {
      case 'acquired': {
        const fence = this.lease.fence();
        if (!fence || fence.token !== c.token) {
          this.log('warn', `the term with fencing token ${c.token} ended before this node could start leading`);
          this.lease.drop(c.token, 'the term ended before this node started leading'); // let another node lead
          return;
        }
        this.takeovers++;
        this.emit(EVENTS.HA_LEADER_ACQUIRED, { node: this.lease.node, token: c.token, previous: c.previousHolder ?? 'none' });
        this.log('warn', `this node (${this.lease.node}) leads now with fencing token ${c.token}`);
        try {
          await runFenced(fence, () => this.duties.announce(fence));
        } catch (err) {
          const e = toIdsyncError(err);
          if (e.code === 'LEASE_LOST') return; // the term ended meanwhile; its loss is reported by the worker
          // The cloud is unreachable: the first write of the term raises the fence instead.
          this.log('warn', `could not announce fencing token ${c.token} to the cloud directory: ${e.message}`);
        }
        if (this.lease.token !== c.token) return;
        this.leading = true;
        runFenced(fence, () => this.duties.start());
        this.notify('leader');
        return;
      }
      case 'lost': {
        this.lost++;
        this.emit(EVENTS.HA_LEASE_LOST, { node: this.lease.node, token: c.token, reason: c.reason });
        this.log('error', `this node (${this.lease.node}) lost the leader lease (token ${c.token}): ${c.reason}`);
        if (this.leading) {
          this.leading = false;
          await this.duties.stop();
        }
        this.notify('standby');
        return;
      }
      case 'unreachable':
        this.unreachable = c.error;
        this.emit(EVENTS.HA_STORE_UNREACHABLE, { node: this.lease.node, error: c.error });
        return;
      case 'reachable':
        this.unreachable = null;
        return;
    }
  }

  status(): HaStatus {
    const token = this.lease.token;
    return {
      node: this.lease.node,
      holder: this.lease.holder,
      role: token !== 0 ? 'leader' : 'standby',
      token: token !== 0 ? token : null,
      leaderSince: this.lease.leaderSince,
      leader: this.lease.leader,
      leaseTtlMs: this.lease.ttlMs,
      nodes: this.lease.nodes,
      takeovers: this.takeovers,
      leaseLost: this.lost,
      storeUnreachable: this.unreachable,
    };
  }

  private notify(role: 'leader' | 'standby'): void {
    for (const fn of this.listeners) fn(role);
  }

  /** Events are written outside any fence: a node that lost the lease still reports it. */
  private emit(def: EventDefinition, details: Record<string, unknown>): void {
    this.events.tryEmit(def, details, (msg) => this.log('error', msg));
  }
}
