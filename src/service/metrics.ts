/**
 * The service's Prometheus metrics (/metrics). Counters count what this process did; gauges are read
 * at scrape time from the database (through the status module), so they also show cycles and
 * deliveries of other processes.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { RunRecord } from '../engine/runs.js';
import { EVENTS } from '../events/catalog.js';
import type { EventRecord } from '../events/log.js';
import { lastFinishedRun, outboxStatus } from '../status/index.js';
import type { Database } from '../store/database.js';
import type { HaStatus } from './ha/leadership.js';
import { ms } from './health.js';

/**
 * A gauge read from the store at scrape time. While the store cannot be read it keeps its last
 * value, so that the scrape still answers (with idsync_health_degraded at 1 saying why) instead of
 * failing whole.
 */
function fromStore(gauge: Gauge, read: () => number): void {
  let value: number;
  try {
    value = read();
  } catch {
    return;
  }
  gauge.set(value);
}

export class ServiceMetrics {
  readonly registry = new Registry();
  private readonly cycles;
  private readonly exported;
  private readonly deliveries;
  private roleChanges: Counter | undefined;

  /** `degraded` answers whether health is degraded now (read at scrape time). */
  constructor(db: Database, degraded: () => boolean) {
    const registers = [this.registry];
    this.cycles = new Counter({ name: 'idsync_sync_cycles_total', help: 'Sync cycles run by this service, by status (skipped: another process held the run)', labelNames: ['status'], registers });
    this.exported = new Counter({ name: 'idsync_objects_exported_total', help: 'Objects written to the cloud directory by this service, by operation', labelNames: ['op'], registers });
    this.deliveries = new Counter({ name: 'idsync_password_deliveries_total', help: 'Password hash deliveries to the cloud directory, by result (delivered, failed, waiting for the cloud user)', labelNames: ['result'], registers });
    for (const status of ['success', 'completed-with-errors', 'failed', 'skipped']) this.cycles.inc({ status }, 0);
    for (const op of ['add', 'update', 'delete']) this.exported.inc({ op }, 0);
    for (const result of ['delivered', 'failed', 'waiting']) this.deliveries.inc({ result }, 0);
    new Gauge({
      name: 'idsync_sync_last_cycle_timestamp_seconds',
      help: 'End time of the last finished sync cycle (any process), Unix seconds; 0 if none',
      registers,
      collect() {
        fromStore(this, () => (ms(lastFinishedRun(db, 5)?.endedAt) ?? 0) / 1000);
      },
    });
    new Gauge({
      name: 'idsync_sync_last_cycle_success',
      help: '1 if the last finished sync cycle did not fail, else 0',
      registers,
      collect() {
        fromStore(this, () => {
          const last = lastFinishedRun(db, 5);
          return last && last.status !== 'failed' ? 1 : 0;
        });
      },
    });
    new Gauge({
      name: 'idsync_password_outbox_depth',
      help: 'Password changes waiting for delivery to the cloud directory',
      registers,
      collect() {
        fromStore(this, () => outboxStatus(db).depth);
      },
    });
    new Gauge({
      name: 'idsync_password_outbox_oldest_age_seconds',
      help: 'Age of the oldest password change waiting for delivery; 0 when the outbox is empty',
      registers,
      collect() {
        fromStore(this, () => {
          const oldest = ms(outboxStatus(db).oldestQueuedAt);
          return oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest) / 1000);
        });
      },
    });
    new Gauge({
      name: 'idsync_health_degraded',
      help: '1 if health is degraded (see /status), else 0',
      registers,
      collect() {
        this.set(degraded() ? 1 : 0);
      },
    });
  }

  /**
   * Several nodes (docs/ha.md): this node's role and token, read at scrape time, and its changes of
   * role. Registered only on the PostgreSQL store, where there is a lease.
   */
  watchHa(status: () => HaStatus): void {
    const registers = [this.registry];
    this.roleChanges = new Counter({ name: 'idsync_ha_role_changes_total', help: 'Times this node became the leader (to=leader: a takeover) or a standby (to=standby: a lost lease)', labelNames: ['to'], registers });
    for (const to of ['leader', 'standby']) this.roleChanges.inc({ to }, 0);
    new Gauge({
      name: 'idsync_ha_leader',
      help: '1 while this node holds the leader lease (runs cycles and password delivery), else 0',
      registers,
      collect() {
        this.set(status().role === 'leader' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'idsync_ha_fencing_token',
      help: 'The fencing token of the leader lease as this node last read it (any holder)',
      registers,
      collect() {
        this.set(status().leader?.token ?? 0);
      },
    });
    new Gauge({
      name: 'idsync_ha_nodes',
      help: 'Nodes that said they were alive within three lease times',
      registers,
      collect() {
        const s = status();
        this.set(s.nodes.filter((n) => n.silentSeconds * 1000 <= 3 * s.leaseTtlMs).length);
      },
    });
  }

  /** This node became the leader or a standby. */
  role(to: 'leader' | 'standby'): void {
    this.roleChanges?.inc({ to });
  }

  /** A cycle this service ran (a skipped one has no run). */
  cycle(run: RunRecord | 'skipped' | 'failed'): void {
    if (typeof run === 'string') {
      this.cycles.inc({ status: run });
      return;
    }
    this.cycles.inc({ status: run.status });
    for (const s of run.steps.filter((x) => x.step === 'export')) {
      this.exported.inc({ op: 'add' }, s.adds);
      this.exported.inc({ op: 'update' }, s.updates);
      this.exported.inc({ op: 'delete' }, s.deletes);
    }
  }

  /** A password batch ended (event 651): its counts by result. */
  batch(r: EventRecord): void {
    if (r.id !== EVENTS.PHS_BATCH_END.id) return;
    for (const result of ['delivered', 'failed', 'waiting'] as const) {
      const n = Number(r.details[result] ?? 0);
      if (Number.isFinite(n) && n > 0) this.deliveries.inc({ result }, n);
    }
  }
}
