/**
 * The service's health: what /status, /readyz, the console's overview, the health metric and the
 * health events (6110/6111) report. The facts come from the status module, as in `doctor` and
 * `service status`; this file decides which of them make the service degraded or not ready.
 */
import { CLOUD_CONNECTOR } from '../connectors/registry.js';
import { describeUnconfigured, unconfiguredConnectors, unconfiguredFix } from '../engine/connector-identity.js';
import type { EngineContext } from '../engine/context.js';
import { EVENTS } from '../events/catalog.js';
import type { EventLog, EventRecord } from '../events/log.js';
import type { HaStatus } from './ha/leadership.js';
import { credentialStatus, lastFinishedRun, outboxStatus, passwordActivity, type CredentialStatus } from '../status/index.js';

/** No password heartbeat (event 654) for this long is a degraded health. */
export const HEARTBEAT_MAX_AGE_MS = 3 * 3600 * 1000;
/** A password change waiting longer than this in the outbox is a degraded health. */
export const OUTBOX_MAX_AGE_MS = 3600 * 1000;

export type HealthCheck = 'sync-cycle' | 'cloud-credential' | 'cloud-availability' | 'password-heartbeat' | 'password-outbox' | 'ha-leader' | 'store';

export interface DegradedReason {
  check: HealthCheck;
  reason: string;
  code?: string;
}

export interface HealthReport {
  status: 'ok' | 'degraded';
  running: boolean;
  pid: number;
  startedAt: string | null;
  url: string | null;
  /** What /readyz answers: the last cycle did not fail and the cloud credential last worked. */
  ready: boolean;
  notReady: string[];
  cycle: {
    inProgress: boolean;
    intervalMs: number;
    nextAt: string | null;
    last: { id: number; profile: string; status: string; startedAt: string; endedAt: string | null; error: { code: string; message: string } | null } | null;
    lastSkipped: { at: string; reason: string } | null;
  };
  passwords: {
    outboxDepth: number;
    /** Of those, changes waiting for their user to be exported (not counted as a backlog). */
    waitingForExport: number;
    oldestQueuedAt: string | null;
    oldestAgeSeconds: number | null;
    heartbeatAt: string | null;
    heartbeatAgeSeconds: number | null;
    /** Of outboxDepth, the changes that can be delivered now. */
    deliverable: number;
    /** The last delivered batch (event 651), and the newer of it and the heartbeat. */
    lastBatchAt: string | null;
    lastActivityAt: string | null;
  };
  /** Metadata only (names, change and test times, last good use): never a secret. */
  credentials: CredentialStatus[];
  degraded: DegradedReason[];
  /** On the PostgreSQL store, several nodes (docs/ha.md): this node's role, the leader and every node. */
  ha?: HaStatus;
}

/** What the running service knows of itself; everything else is read from the database. */
export interface ServiceState {
  running: boolean;
  /** Epoch ms. */
  startedAt: number | null;
  url: string | null;
  intervalMs: number;
  cycleInProgress: boolean;
  /** Epoch ms of the next scheduled cycle. */
  nextAt: number | null;
  lastSkipped: { at: string; reason: string } | null;
  ha?: HaStatus;
}

/** An ISO time as epoch ms; undefined for none or garbage. */
export const ms = (iso: string | null | undefined): number | undefined => {
  if (!iso) return undefined;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? undefined : t;
};

/** The newest password batch that the cloud accepted at least partly (651 with delivered > 0). */
function lastDeliveredBatch(ctx: EngineContext): EventRecord | undefined {
  return ctx.events
    .query({ ids: [EVENTS.PHS_BATCH_END.id], limit: 50 })
    .reverse()
    .find((e) => Number(e.details.delivered) > 0);
}

export function healthReport(ctx: EngineContext, state: ServiceState, now = Date.now()): HealthReport {
  // Every answer below comes from the status module, as in `doctor` and `service status`.
  const last = lastFinishedRun(ctx.db, 5);
  const outbox = outboxStatus(ctx.db);
  const activity = passwordActivity(ctx.events);
  const heartbeat = ctx.events.latest(EVENTS.PHS_HEARTBEAT);
  const credentials = credentialStatus(ctx.db, ctx.credentials.list());
  const degraded: DegradedReason[] = [];
  const notReady: string[] = [];

  // A cycle refused for a connector space the configuration does not name leaves no run (it is
  // refused before anything is written): the same question as the refusal, asked of the
  // configuration the service has loaded, says so for as long as it holds — and no longer.
  const unconfigured = unconfiguredConnectors(ctx);
  if (unconfigured.length > 0) {
    const fix = unconfiguredFix(ctx, unconfigured[0]!.name);
    const reason = `every sync cycle is refused: the store holds the connector space of ${describeUnconfigured(unconfigured)}, which the configuration does not name (event 6580) — \`${fix.rename}\` if it was renamed, \`${fix.forget}\` if it was removed`;
    degraded.push({ check: 'sync-cycle', reason, code: 'CONNECTOR_NOT_CONFIGURED' });
    notReady.push(reason);
  }
  if (!last) {
    notReady.push('no sync cycle has finished yet');
  } else if (last.status === 'failed' && unconfigured.length === 0) {
    const code = last.error?.code ?? 'INTERNAL';
    const reason = `the last sync cycle (run ${last.id}) failed: ${code}${last.error?.message ? ` — ${last.error.message}` : ''}`;
    degraded.push({ check: 'sync-cycle', reason, code });
    notReady.push(reason);
  }

  // The cloud credential: a failed test or an access denied (115) newer than the last success.
  const cloudCred = credentials.find((c) => c.name === CLOUD_CONNECTOR);
  // Only an export that wrote to the cloud proves the credential: a cycle with nothing to export
  // makes no request, and must not hide a refused credential (the KB 2962509 lesson).
  const wroteToCloud = last?.steps.some((s) => s.step === 'export' && s.status !== 'failed' && s.adds + s.updates + s.deletes > 0);
  const lastExportOk = wroteToCloud ? ms(last!.endedAt) : undefined;
  const lastSuccess = Math.max(
    lastExportOk ?? 0,
    ms(heartbeat?.time) ?? 0,
    ms(lastDeliveredBatch(ctx)?.time) ?? 0,
    cloudCred?.lastTestOk ? (ms(cloudCred.lastTestAt) ?? 0) : 0,
  );
  const denied = ctx.events.latest(EVENTS.CLOUD_ACCESS_DENIED);
  const recorded = ctx.credentials.refusal(CLOUD_CONNECTOR);
  // A lock that has ended says nothing about the password any more (it was not checked).
  const refusal = recorded && !(recorded.lockedSeconds !== undefined && (ms(recorded.nextAttemptAt) ?? 0) <= now) ? recorded : undefined;
  if (refusal) {
    // Recorded by whichever component was refused: nothing presents that secret again.
    const reason =
      refusal.lockedSeconds !== undefined
        ? `the cloud account was locked at ${refusal.refusedAt}; the password is not presented before ${refusal.nextAttemptAt}`
        : `the cloud directory refused the stored credential at ${refusal.refusedAt} (${refusal.code}); it is not presented again until it changes (next check ${refusal.nextAttemptAt})`;
    degraded.push({ check: 'cloud-credential', reason, code: 'CLOUD_AUTH_FAILED' });
    notReady.push(reason);
  } else if (cloudCred?.lastTestOk === false && (ms(cloudCred.lastTestAt) ?? 0) >= lastSuccess) {
    const reason = `the cloud credential failed its last test at ${cloudCred.lastTestAt} (${cloudCred.lastErrorCode ?? 'error'})`;
    degraded.push({ check: 'cloud-credential', reason, code: cloudCred.lastErrorCode ?? 'CLOUD_AUTH_FAILED' });
    notReady.push(reason);
  } else if (denied && (ms(denied.time) ?? 0) > lastSuccess) {
    const reason = `the cloud directory denied access at ${denied.time} (event 115): ${String(denied.details.error ?? denied.message)}`;
    degraded.push({ check: 'cloud-credential', reason, code: String(denied.details.code ?? 'CLOUD_AUTH_FAILED') });
    notReady.push(reason);
  } else if (!cloudCred) {
    notReady.push('no cloud credential is stored (idsync credentials set cloud)');
  }

  const unavailable = ctx.events.latest(EVENTS.CLOUD_UNAVAILABLE);
  if (unavailable && (ms(unavailable.time) ?? 0) > lastSuccess) {
    const reason = `the cloud directory has been unavailable since ${unavailable.time} (event 6112): ${String(unavailable.details.error ?? unavailable.message)}`;
    degraded.push({ check: 'cloud-availability', reason, code: String(unavailable.details.code ?? 'CLOUD_UNAVAILABLE') });
    notReady.push(reason);
  }

  // A delivered batch (651) shows the pipeline alive as well as a heartbeat (654) does.
  const hbAt = ms(activity.heartbeatAt);
  const aliveAt = ms(activity.lastActivityAt);
  const hbRef = aliveAt ?? state.startedAt ?? now;
  if (now - hbRef > HEARTBEAT_MAX_AGE_MS) {
    degraded.push({
      check: 'password-heartbeat',
      reason: aliveAt ? `no password sync heartbeat (event 654) or batch (651) since ${activity.lastActivityAt}` : 'no password sync heartbeat (event 654) for 3 hours since the service started',
    });
  }

  const oldest = ms(outbox.oldestQueuedAt);
  if (oldest !== undefined && now - oldest > OUTBOX_MAX_AGE_MS) {
    degraded.push({ check: 'password-outbox', reason: `${outbox.depth} password change(s) waiting; the oldest since ${outbox.oldestQueuedAt}` });
  }

  degraded.push(...haDegraded(state));

  return {
    status: degraded.length ? 'degraded' : 'ok',
    ...processFacts(state),
    ready: notReady.length === 0,
    notReady,
    cycle: cycleFacts(
      state,
      last
        ? {
            id: last.id,
            profile: last.profile,
            status: last.status,
            startedAt: last.startedAt,
            endedAt: last.endedAt,
            error: last.error ? { code: last.error.code, message: last.error.message } : null,
          }
        : null,
    ),
    passwords: {
      outboxDepth: outbox.depth,
      waitingForExport: outbox.waitingForExport,
      deliverable: outbox.deliverable,
      oldestQueuedAt: outbox.oldestQueuedAt ?? null,
      oldestAgeSeconds: oldest !== undefined ? Math.max(0, Math.round((now - oldest) / 1000)) : null,
      heartbeatAt: activity.heartbeatAt,
      heartbeatAgeSeconds: hbAt !== undefined ? Math.max(0, Math.round((now - hbAt) / 1000)) : null,
      lastBatchAt: activity.lastBatchAt,
      lastActivityAt: activity.lastActivityAt,
    },
    credentials,
    degraded,
    ...(state.ha ? { ha: state.ha } : {}),
  };
}

/** Emits 6110 for each check that starts failing and 6111 for each that recovers. */
export class HealthTransitions {
  private readonly active = new Set<HealthCheck>();

  /** `log`: where a transition goes when the event log cannot take it (the store is down). */
  constructor(
    private readonly events: EventLog,
    private readonly log: (msg: string) => void,
  ) {}

  /**
   * Each transition is said once, also when the store cannot record it (then in the log): the
   * store's own outage is a check too, and its 6111 is recorded when the store is back.
   */
  update(report: HealthReport): void {
    const now = new Set(report.degraded.map((d) => d.check));
    const started = report.degraded.filter((d) => !this.active.has(d.check));
    const ended = [...this.active].filter((c) => !now.has(c));
    this.active.clear();
    for (const c of now) this.active.add(c);
    for (const d of started) this.events.tryEmit(EVENTS.HEALTH_DEGRADED, { check: d.check, reason: d.reason, code: d.code }, this.log);
    for (const c of ended) this.events.tryEmit(EVENTS.HEALTH_RECOVERED, { check: c }, this.log);
  }
}

/**
 * The report while the store cannot be read (PostgreSQL down, the disk gone): what this process
 * knows itself (running, its schedule, its role among the nodes) and, for what only the store
 * says, the last report it could make. Degraded and not ready, with the store's error as the
 * reason: /status, /readyz and `idsync service status` answer through an outage rather than fail.
 */
export function storeUnreachableReport(last: { report: HealthReport; at: Date } | undefined, state: ServiceState, error: { code: string; message: string }): HealthReport {
  const asOf = last ? `; the cycle, password and credential figures are as of ${last.at.toISOString()}` : '';
  const reason = `the store cannot be read: ${error.code}: ${error.message}${asOf}`;
  const earlier = last?.report.degraded.filter((d) => d.check !== 'store' && d.check !== 'ha-leader') ?? [];
  return {
    status: 'degraded',
    ...processFacts(state),
    ready: false,
    notReady: [reason],
    cycle: cycleFacts(state, last?.report.cycle.last ?? null),
    passwords: last?.report.passwords ?? {
      outboxDepth: 0,
      waitingForExport: 0,
      deliverable: 0,
      oldestQueuedAt: null,
      oldestAgeSeconds: null,
      heartbeatAt: null,
      heartbeatAgeSeconds: null,
      lastBatchAt: null,
      lastActivityAt: null,
    },
    credentials: last?.report.credentials ?? [],
    degraded: [{ check: 'store', reason, code: error.code }, ...haDegraded(state), ...earlier],
    ...(state.ha ? { ha: state.ha } : {}),
  };
}

/** What the process knows of itself, the same whether the store can be read or not. */
function processFacts(state: ServiceState): Pick<HealthReport, 'running' | 'pid' | 'startedAt' | 'url'> {
  return { running: state.running, pid: process.pid, startedAt: state.startedAt ? new Date(state.startedAt).toISOString() : null, url: state.url };
}

/** The cycle's schedule, from the process; `last` from the store. */
function cycleFacts(state: ServiceState, last: HealthReport['cycle']['last']): HealthReport['cycle'] {
  return {
    inProgress: state.cycleInProgress,
    intervalMs: state.intervalMs,
    nextAt: state.nextAt ? new Date(state.nextAt).toISOString() : null,
    last,
    lastSkipped: state.lastSkipped,
  };
}

/** Several nodes: someone must hold the lease (an expired one means no node runs the cycles). From memory. */
function haDegraded(state: ServiceState): DegradedReason[] {
  const ha = state.ha;
  if (!ha || !state.running) return [];
  if (ha.storeUnreachable) return [{ check: 'ha-leader', reason: `this node cannot reach PostgreSQL to take part in the leader lease: ${ha.storeUnreachable}` }];
  if (ha.leader && !ha.leader.live) return [{ check: 'ha-leader', reason: `no node holds the leader lease (node ${ha.leader.node}'s expired at ${ha.leader.expiresAt})` }];
  return [];
}
