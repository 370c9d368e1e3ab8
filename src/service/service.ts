/**
 * `idsync serve`: the sync service in one process (see docs/service.md).
 *
 *   scheduler ──▶ runCycle(ctx) at start and every intervalMs (never two at once)
 *   password pipeline ──▶ delivers queued password hashes to the cloud (durable outbox)
 *   HTTP(S) server ──▶ /healthz /readyz /metrics /status, the DC agent's batches and PCNs
 *
 * The PCN endpoint carries passwords: production listens with TLS. Plain HTTP is refused on any
 * address other than loopback. The HTTP logger logs method, path and status only — never bodies
 * or headers. The service owns the context it is given: stop() closes it.
 */
import { credentialStatus, lastFinishedRun, outboxStatus, passwordActivity, type CredentialStatus } from '../status/index.js';
import { readFileSync, statSync } from 'node:fs';
import { loadConfig } from '../config/load.js';
import { parseDuration } from '../config/duration.js';
import { DEFAULT_SYNC_INTERVAL } from '../config/schema.js';
import { isIP } from 'node:net';
import { CONSOLE_PREFIX, consolePlugin } from '../console/plugin.js';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Counter, Gauge, Registry } from 'prom-client';
import type { CloudClient } from '../connectors/cloud/client.js';
import { CLOUD_CONNECTOR, createCloudClient } from '../connectors/registry.js';
import { IdsyncError, toIdsyncError } from '../core/errors.js';
import { loadOrCreateKey } from '../credentials/key.js';
import type { EngineContext } from '../engine/context.js';
import { runCycle, type CycleOptions, type CycleResult } from '../engine/cycle.js';
import { RunLog, type RunRecord } from '../engine/runs.js';
import { DrsPasswordSource } from '../passwords/sources/drs.js';
import { EVENTS } from '../events/catalog.js';
import { EventLog, type EventRecord } from '../events/log.js';
import {
  AGENT_BATCH_PATH,
  AGENT_TOKEN_CREDENTIAL,
  PCN_PATH,
  PasswordPipeline,
  handleAgentBatch,
  handlePasswordChangeNotification,
  verifyBearer,
  type PasswordPipelineOptions,
} from '../passwords/index.js';

export const DEFAULT_INTERVAL_MS = parseDuration(DEFAULT_SYNC_INTERVAL);
export const DEFAULT_PORT = 7443;
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_STOP_TIMEOUT_MS = 30_000;
/** No password heartbeat (event 654) for this long is a degraded health. */
export const HEARTBEAT_MAX_AGE_MS = 3 * 3600 * 1000;
/** A password change waiting longer than this in the outbox is a degraded health. */
export const OUTBOX_MAX_AGE_MS = 3600 * 1000;
const HEALTH_CHECK_MS = 60_000;

export interface ServiceLoggerOptions {
  level?: string;
  /** Where JSON log lines go (default stdout). */
  stream?: NodeJS.WritableStream;
}

export interface SyncServiceOptions {
  /** Delta cycle schedule (default 5 min). */
  intervalMs?: number;
  /** Listen address (default 127.0.0.1). Without TLS only a loopback address is accepted. */
  host?: string;
  /** Listen port (default 7443; 0 = a random free port). */
  port?: number;
  /** PEM files of the certificate (chain) and its private key: the server speaks HTTPS. */
  tls?: { cert: string; key: string };
  /** HTTP and service log (pino JSON); false for none. Default: info to stdout. */
  logger?: false | ServiceLoggerOptions;
  /** Password pipeline tuning (tests). */
  passwords?: PasswordPipelineOptions;
}

export type HealthCheck = 'sync-cycle' | 'cloud-credential' | 'cloud-availability' | 'password-heartbeat' | 'password-outbox';

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
}

const LOOPBACK_NAMES = new Set(['localhost', '::1', '[::1]']);

export function isLoopback(host: string): boolean {
  if (LOOPBACK_NAMES.has(host.toLowerCase())) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (host.toLowerCase().startsWith('::ffff:127.')) return true;
  return false;
}

const ms = (iso: string | null | undefined): number | undefined => {
  if (!iso) return undefined;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? undefined : t;
};

export class SyncService {
  private readonly intervalMs: number;
  private readonly host: string;
  private readonly port: number;
  private readonly runs: RunLog;
  private readonly pipelineEvents: EventLog;
  private readonly cloud: CloudClient;
  /** Modification time of the configuration file last loaded. */
  private configMtime: number | undefined;
  readonly pipeline: PasswordPipeline;
  /** Password sources that poll DCs over MS-DRSR (AD connectors with `passwords: { source: drs }`). */
  readonly drsSources: DrsPasswordSource[] = [];
  private readonly registry = new Registry();
  private readonly metrics;

  private app: FastifyInstance | undefined;
  private url: string | null = null;
  private startedAt: number | null = null;
  private running = false;
  private stopping: Promise<void> | undefined;
  private cycle: Promise<CycleResult | undefined> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private nextAt: number | null = null;
  private lastSkipped: { at: string; reason: string } | null = null;
  private readonly activeChecks = new Set<HealthCheck>();

  constructor(
    private readonly ctx: EngineContext,
    private readonly opts: SyncServiceOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? DEFAULT_INTERVAL_MS;
    if (!Number.isFinite(this.intervalMs) || this.intervalMs < 1000) {
      throw new IdsyncError('CONFIG_INVALID', `the cycle interval must be at least 1 second, not ${this.intervalMs} ms`, { hint: 'e.g. --interval 5m' });
    }
    this.host = opts.host ?? DEFAULT_HOST;
    this.port = opts.port ?? DEFAULT_PORT;
    if (!opts.tls && !isLoopback(this.host)) {
      throw new IdsyncError('CONFIG_INVALID', `plain HTTP is only allowed on loopback, not on ${this.host}: the password change endpoint carries passwords`, {
        hint: 'Pass --tls-cert FILE --tls-key FILE, or listen on 127.0.0.1 behind a TLS-terminating proxy.',
      });
    }
    this.runs = new RunLog(ctx.db);
    this.metrics = this.createMetrics();
    this.pipelineEvents = new EventLog(ctx.db, { sinks: [{ write: (r) => this.onPipelineEvent(r) }] });
    this.cloud = createCloudClient(ctx.loaded, ctx.credentials);
    this.pipeline = new PasswordPipeline({
      db: ctx.db,
      cloud: this.cloud,
      events: this.pipelineEvents,
      key: loadOrCreateKey(ctx.loaded.dataDir).key,
      credentialVersion: () => ctx.credentials.info(CLOUD_CONNECTOR)?.changedAt,
      credentialRefused: () => ctx.credentials.refusedNow(CLOUD_CONNECTOR),
      ...(opts.passwords ? { options: opts.passwords } : {}),
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Lifecycle
  // ---------------------------------------------------------------------------------------------

  /** Listens, starts the password pipeline and the first cycle (not awaited: see idle()). */
  async start(): Promise<{ url: string }> {
    if (this.running || this.stopping) throw new IdsyncError('INTERNAL', 'the service was already started');
    const app = this.createServer();
    this.app = app;
    try {
      await app.listen({ host: this.host, port: this.port });
    } catch (err) {
      await app.close().catch(() => undefined);
      const e = err as NodeJS.ErrnoException;
      throw new IdsyncError('CONFIG_INVALID', `cannot listen on ${this.host}:${this.port}: ${e.code ?? e.message}`, {
        hint: e.code === 'EADDRINUSE' ? 'Another process uses the port: stop it or pass --port.' : 'Check --host and --port.',
      });
    }
    const addr = app.server.address();
    const port = addr && typeof addr === 'object' ? addr.port : this.port;
    const hostPart = isIP(this.host) === 6 ? `[${this.host}]` : this.host;
    this.url = `${this.opts.tls ? 'https' : 'http'}://${hostPart}:${port}`;
    this.running = true;
    this.startedAt = Date.now();
    if (this.ctx.loaded.config.passwordHashSync.enabled) {
      this.pipeline.start();
      this.startDrsSources();
    }
    this.ctx.events.emit(EVENTS.SERVICE_STARTED, { version: process.env.npm_package_version ?? '0.1.0', pid: process.pid, url: this.url });
    try {
      this.configMtime = statSync(this.ctx.loaded.file).mtimeMs;
    } catch {
      /* a configuration given in memory (tests) has no file to watch */
    }
    this.healthTimer = setInterval(() => {
      void this.reloadConfigurationIfChanged().then(() => this.checkHealth());
    }, HEALTH_CHECK_MS);
    void this.runNow();
    return { url: this.url };
  }

  /**
   * Stops accepting requests, waits for the cycle in flight (up to timeoutMs), stops the password
   * pipeline (undelivered changes stay in the outbox) and closes the context. Idempotent.
   */
  stop(timeoutMs = DEFAULT_STOP_TIMEOUT_MS, reason = 'requested'): Promise<void> {
    this.stopping ??= this.doStop(timeoutMs, reason);
    return this.stopping;
  }

  private async doStop(timeoutMs: number, reason: string): Promise<void> {
    const wasRunning = this.running;
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    if (this.healthTimer) clearInterval(this.healthTimer);
    this.timer = undefined;
    this.nextAt = null;
    if (wasRunning) this.ctx.events.emit(EVENTS.SERVICE_STOPPING, { reason });
    await this.app?.close().catch(() => undefined);
    if (this.cycle) {
      let timedOut = false;
      let t: NodeJS.Timeout | undefined;
      await Promise.race([
        this.cycle,
        new Promise<void>((resolve) => {
          t = setTimeout(() => {
            timedOut = true;
            resolve();
          }, timeoutMs);
        }),
      ]);
      clearTimeout(t);
      if (timedOut) this.log('warn', `the sync cycle did not finish within ${timeoutMs} ms; it is marked interrupted at the next start`);
    }
    await Promise.all(this.drsSources.map((d) => d.stop()));
    await this.pipeline.stop();
    await this.cloud.close().catch(() => undefined);
    if (wasRunning) this.ctx.events.emit(EVENTS.SERVICE_STOPPED, {});
    this.pipelineEvents.close();
    this.ctx.close();
  }

  private startDrsSources(): void {
    for (const c of this.ctx.loaded.config.connectors) {
      if (c.type !== 'ad' || c.passwords?.source !== 'drs') continue;
      const src = new DrsPasswordSource({
        db: this.ctx.db,
        pipeline: this.pipeline,
        connector: { ...c, passwords: c.passwords },
        secret: this.ctx.credentials.resolver(c.name),
        credentialVersion: () => this.ctx.credentials.info(c.name)?.changedAt,
        events: this.pipelineEvents,
      });
      this.drsSources.push(src);
      src.start();
    }
  }

  /**
   * Runs a cycle now, or returns the one in flight. Resolves undefined when skipped. With options
   * (the console's full sync, preview, approved deletions) a cycle in flight is waited for first.
   */
  runNow(options?: Omit<CycleOptions, 'onProgress'>): Promise<CycleResult | undefined> {
    if (this.cycle) return options ? this.cycle.catch(() => undefined).then(() => this.runNow(options)) : this.cycle;
    if (!this.running) return Promise.resolve(undefined);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.nextAt = null;
    const p = this.cycleOnce(options).finally(() => {
      this.cycle = undefined;
      this.checkHealth();
      if (this.running) {
        this.nextAt = Date.now() + this.intervalMs;
        this.timer = setTimeout(() => void this.runNow(), this.intervalMs);
      }
    });
    this.cycle = p;
    return p;
  }

  /** Resolves when no cycle is in flight. */
  async idle(): Promise<void> {
    while (this.cycle) await this.cycle.catch(() => undefined);
  }

  /**
   * Picks up a configuration changed on disk (by `idsync configure`, or an editor) before the next
   * cycle, without a restart. An invalid file is reported (6105) and the previous one kept.
   * Changing the data directory or the cloud URL still needs `idsync service restart`.
   */
  async reloadConfigurationIfChanged(): Promise<void> {
    const file = this.ctx.loaded.file;
    let mtime: number;
    try {
      mtime = statSync(file).mtimeMs;
    } catch {
      return;
    }
    if (this.configMtime === undefined) this.configMtime = mtime;
    if (mtime === this.configMtime) return;
    this.configMtime = mtime;
    const before = this.ctx.loaded;
    let next: typeof before;
    try {
      next = loadConfig(file);
    } catch (err) {
      this.ctx.events.emit(EVENTS.CONFIGURATION_RELOAD_FAILED, { file, error: toIdsyncError(err).message });
      return;
    }
    if (next.dataDir !== before.dataDir || next.config.cloud.url !== before.config.cloud.url) {
      this.ctx.events.emit(EVENTS.CONFIGURATION_RELOAD_FAILED, { file, error: 'the data directory or the cloud URL changed; run `idsync service restart` to use them' });
      return;
    }
    this.ctx.loaded = next;
    this.ctx.events.emit(EVENTS.CONFIGURATION_RELOADED, { file });
    const phsBefore = before.config.passwordHashSync.enabled;
    const phsNow = next.config.passwordHashSync.enabled;
    // DRS sources restart with the new connector settings (their state is in the database)
    await Promise.all(this.drsSources.splice(0).map((d) => d.stop()));
    if (!phsBefore && phsNow) this.pipeline.start();
    if (phsBefore && !phsNow) await this.pipeline.stop();
    if (phsNow && this.running) this.startDrsSources();
  }

  private async cycleOnce(options: Omit<CycleOptions, 'onProgress'> = {}): Promise<CycleResult | undefined> {
    try {
      await this.reloadConfigurationIfChanged();
      const run = await runCycle(this.ctx, options);
      this.metrics.cycles.inc({ status: run.status });
      for (const s of run.steps.filter((x) => x.step === 'export')) {
        this.metrics.exported.inc({ op: 'add' }, s.adds);
        this.metrics.exported.inc({ op: 'update' }, s.updates);
        this.metrics.exported.inc({ op: 'delete' }, s.deletes);
      }
      this.recordCloudCredential(run);
      this.log(run.status === 'success' ? 'info' : 'warn', `sync cycle run ${run.id}: ${run.status}${run.error ? ` (${run.error.code})` : ''}`);
      return run;
    } catch (err) {
      const e = toIdsyncError(err);
      if (e.code === 'RUN_IN_PROGRESS') {
        this.metrics.cycles.inc({ status: 'skipped' });
        this.lastSkipped = { at: new Date().toISOString(), reason: e.message };
        this.log('info', `sync cycle skipped: ${e.message}`);
        return undefined;
      }
      this.metrics.cycles.inc({ status: 'failed' });
      this.log('error', `sync cycle could not run: ${e.code}: ${e.message}`);
      return undefined;
    }
  }

  /** An export that reached the cloud is a test of its credential; so is one it refused. */
  /** The newest password batch that the cloud accepted at least partly (651 with delivered > 0). */
  private lastDeliveredBatch(): EventRecord | undefined {
    return this.ctx.events
      .query({ ids: [EVENTS.PHS_BATCH_END.id], limit: 50 })
      .reverse()
      .find((e) => Number(e.details.delivered) > 0);
  }

  private recordCloudCredential(run: RunRecord): void {
    const exp = run.steps.find((s) => s.step === 'export' && s.connector === CLOUD_CONNECTOR);
    if (!exp) return;
    if (exp.status !== 'failed') {
      // An export with nothing to write made no request: it tested nothing.
      if (exp.adds + exp.updates + exp.deletes > 0) this.ctx.credentials.recordTest(CLOUD_CONNECTOR, true);
      return;
    }
    const err = run.errors.find((e) => e.step === 'export' && e.connector === CLOUD_CONNECTOR);
    if (err && (err.code === 'CLOUD_AUTH_FAILED' || err.code === 'CREDENTIAL_MISSING')) this.ctx.credentials.recordTest(CLOUD_CONNECTOR, false, err.code);
  }

  // ---------------------------------------------------------------------------------------------
  // Health
  // ---------------------------------------------------------------------------------------------

  health(): HealthReport {
    const now = Date.now();
    // Every answer below comes from the status module, as in `doctor` and `service status`.
    const last = lastFinishedRun(this.ctx.db, 5);
    const outbox = outboxStatus(this.ctx.db);
    const activity = passwordActivity(this.ctx.events);
    const heartbeat = this.ctx.events.latest(EVENTS.PHS_HEARTBEAT);
    const credentials = credentialStatus(this.ctx.db, this.ctx.credentials.list());
    const degraded: DegradedReason[] = [];
    const notReady: string[] = [];

    if (!last) {
      notReady.push('no sync cycle has finished yet');
    } else if (last.status === 'failed') {
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
      ms(this.lastDeliveredBatch()?.time) ?? 0,
      cloudCred?.lastTestOk ? (ms(cloudCred.lastTestAt) ?? 0) : 0,
    );
    const denied = this.ctx.events.latest(EVENTS.CLOUD_ACCESS_DENIED);
    const recorded = this.ctx.credentials.refusal(CLOUD_CONNECTOR);
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

    const unavailable = this.ctx.events.latest(EVENTS.CLOUD_UNAVAILABLE);
    if (unavailable && (ms(unavailable.time) ?? 0) > lastSuccess) {
      const reason = `the cloud directory has been unavailable since ${unavailable.time} (event 6112): ${String(unavailable.details.error ?? unavailable.message)}`;
      degraded.push({ check: 'cloud-availability', reason, code: String(unavailable.details.code ?? 'CLOUD_UNAVAILABLE') });
      notReady.push(reason);
    }

    // A delivered batch (651) shows the pipeline alive as well as a heartbeat (654) does.
    const hbAt = ms(activity.heartbeatAt);
    const aliveAt = ms(activity.lastActivityAt);
    const hbRef = aliveAt ?? this.startedAt ?? now;
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

    return {
      status: degraded.length ? 'degraded' : 'ok',
      running: this.running,
      pid: process.pid,
      startedAt: this.startedAt ? new Date(this.startedAt).toISOString() : null,
      url: this.url,
      ready: notReady.length === 0,
      notReady,
      cycle: {
        inProgress: this.cycle !== undefined,
        intervalMs: this.intervalMs,
        nextAt: this.nextAt ? new Date(this.nextAt).toISOString() : null,
        last: last
          ? {
              id: last.id,
              profile: last.profile,
              status: last.status,
              startedAt: last.startedAt,
              endedAt: last.endedAt,
              error: last.error ? { code: last.error.code, message: last.error.message } : null,
            }
          : null,
        lastSkipped: this.lastSkipped,
      },
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
    };
  }

  /** Emits 6110 for each check that starts failing and 6111 for each that recovers. */
  private checkHealth(): void {
    if (!this.running) return;
    let report: HealthReport;
    try {
      report = this.health();
    } catch (err) {
      this.log('error', `health check failed: ${toIdsyncError(err).message}`);
      return;
    }
    const now = new Set(report.degraded.map((d) => d.check));
    for (const d of report.degraded) {
      if (!this.activeChecks.has(d.check)) this.ctx.events.emit(EVENTS.HEALTH_DEGRADED, { check: d.check, reason: d.reason, code: d.code });
    }
    for (const c of this.activeChecks) if (!now.has(c)) this.ctx.events.emit(EVENTS.HEALTH_RECOVERED, { check: c });
    this.activeChecks.clear();
    for (const c of now) this.activeChecks.add(c);
  }

  // ---------------------------------------------------------------------------------------------
  // Metrics
  // ---------------------------------------------------------------------------------------------

  private createMetrics() {
    const register = this.registry;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    const cycles = new Counter({ name: 'idsync_sync_cycles_total', help: 'Sync cycles run by this service, by status (skipped: another process held the run)', labelNames: ['status'], registers: [register] });
    const exported = new Counter({ name: 'idsync_objects_exported_total', help: 'Objects written to the cloud directory by this service, by operation', labelNames: ['op'], registers: [register] });
    const deliveries = new Counter({ name: 'idsync_password_deliveries_total', help: 'Password hash deliveries to the cloud directory, by result (delivered, failed, waiting for the cloud user)', labelNames: ['result'], registers: [register] });
    for (const status of ['success', 'completed-with-errors', 'failed', 'skipped']) cycles.inc({ status }, 0);
    for (const op of ['add', 'update', 'delete']) exported.inc({ op }, 0);
    for (const result of ['delivered', 'failed', 'waiting']) deliveries.inc({ result }, 0);
    new Gauge({
      name: 'idsync_sync_last_cycle_timestamp_seconds',
      help: 'End time of the last finished sync cycle (any process), Unix seconds; 0 if none',
      registers: [register],
      collect() {
        const last = lastFinishedRun(self.ctx.db, 5);
        this.set((ms(last?.endedAt) ?? 0) / 1000);
      },
    });
    new Gauge({
      name: 'idsync_sync_last_cycle_success',
      help: '1 if the last finished sync cycle did not fail, else 0',
      registers: [register],
      collect() {
        const last = lastFinishedRun(self.ctx.db, 5);
        this.set(last && last.status !== 'failed' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'idsync_password_outbox_depth',
      help: 'Password changes waiting for delivery to the cloud directory',
      registers: [register],
      collect() {
        this.set(outboxStatus(self.ctx.db).depth);
      },
    });
    new Gauge({
      name: 'idsync_password_outbox_oldest_age_seconds',
      help: 'Age of the oldest password change waiting for delivery; 0 when the outbox is empty',
      registers: [register],
      collect() {
        const oldest = ms(outboxStatus(self.ctx.db).oldestQueuedAt);
        this.set(oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest) / 1000));
      },
    });
    new Gauge({
      name: 'idsync_health_degraded',
      help: '1 if health is degraded (see /status), else 0',
      registers: [register],
      collect() {
        this.set(self.health().degraded.length > 0 ? 1 : 0);
      },
    });
    return { cycles, exported, deliveries };
  }

  private onPipelineEvent(r: EventRecord): void {
    // Health follows the cloud's answers at once: degraded when it stops answering or refuses,
    // recovered (6111) as soon as a batch or a ping gets through.
    const delivered = r.id === EVENTS.PHS_BATCH_END.id && Number(r.details.delivered) > 0;
    if (delivered || [EVENTS.PHS_HEARTBEAT.id, EVENTS.CLOUD_UNAVAILABLE.id, EVENTS.CLOUD_ACCESS_DENIED.id, EVENTS.CLOUD_ACCOUNT_LOCKED.id].includes(r.id)) {
      setImmediate(() => this.checkHealth());
    }
    if (r.id !== EVENTS.PHS_BATCH_END.id) return;
    for (const result of ['delivered', 'failed', 'waiting'] as const) {
      const n = Number(r.details[result] ?? 0);
      if (Number.isFinite(n) && n > 0) this.metrics.deliveries.inc({ result }, n);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // HTTP
  // ---------------------------------------------------------------------------------------------

  private log(level: 'info' | 'warn' | 'error', msg: string): void {
    this.app?.log[level](msg);
  }

  private createServer(): FastifyInstance {
    const base = {
      logger: loggerConfig(this.opts.logger),
      bodyLimit: 4 * 1024 * 1024,
      forceCloseConnections: true,
      return503OnClosing: true,
    };
    const tls = this.opts.tls;
    const app: FastifyInstance = tls
      ? (Fastify({ ...base, https: { cert: readFileSync(tls.cert), key: readFileSync(tls.key) } }) as unknown as FastifyInstance)
      : Fastify(base);

    app.setErrorHandler((err: FastifyError, _req, reply) => {
      const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
      // Never echo a parser message: it may quote the body.
      const body =
        status === 413
          ? { error: { code: 'PAYLOAD_TOO_LARGE', message: 'the request body is too large' } }
          : status < 500
            ? { error: { code: 'BAD_REQUEST', message: 'the request could not be read (send JSON with content-type application/json)' } }
            : { error: { code: 'INTERNAL', message: 'internal error' } };
      return reply.code(status).send(body);
    });

    app.get('/healthz', async () => ({ status: 'alive' }));
    app.get('/readyz', async (_req, reply) => {
      const h = this.health();
      return reply.code(h.ready ? 200 : 503).send({ ready: h.ready, reasons: h.notReady });
    });
    app.get('/status', async () => this.health());
    app.get('/metrics', async (_req, reply) => {
      const text = await this.registry.metrics();
      return reply.header('content-type', this.registry.contentType).send(text);
    });

    const auth = async (req: FastifyRequest, reply: FastifyReply) => {
      // Read from the store on every request: a rotated token applies at once.
      const expected = this.ctx.credentials.get(AGENT_TOKEN_CREDENTIAL);
      if (!verifyBearer(req.headers.authorization, expected)) {
        return reply
          .code(401)
          .header('www-authenticate', 'Bearer')
          .send({ error: { code: 'UNAUTHORIZED', message: 'a valid agent token is required', hint: 'Send Authorization: Bearer <token>; the token is set with `idsync credentials set agent --no-validate`.' } });
      }
      if (!this.ctx.loaded.config.passwordHashSync.enabled) {
        return reply.code(503).send({
          error: { code: 'PASSWORD_HASH_SYNC_OFF', message: 'password hash synchronization is turned off on this service', hint: 'Turn it on with `idsync configure --task password-hash-sync --enable`, then `idsync service restart`.' },
        });
      }
    };
    app.post(AGENT_BATCH_PATH, { onRequest: auth }, async (req, reply) => {
      const r = await handleAgentBatch(this.pipeline, req.body);
      return reply.code(r.statusCode).header('cache-control', 'no-store').send(r.body);
    });
    app.post(PCN_PATH, { onRequest: auth }, async (req, reply) => {
      const r = await handlePasswordChangeNotification(this.pipeline, req.body);
      return reply.code(r.statusCode).header('cache-control', 'no-store').send(r.body);
    });
    // The web console (src/console/): only on loopback or under TLS, its own path and session.
    if (tls || isLoopback(this.host)) {
      void app.register(consolePlugin, { prefix: CONSOLE_PREFIX, ctx: this.ctx, health: () => this.health(), runNow: (o) => this.runNow(o), pipeline: this.pipeline, idle: () => this.idle(), secure: !!tls });
    }
    return app;
  }
}

function loggerConfig(logger: SyncServiceOptions['logger']): false | Record<string, unknown> {
  if (logger === false) return false;
  const opts = logger ?? {};
  return {
    level: opts.level ?? 'info',
    ...(opts.stream ? { stream: opts.stream } : {}),
    redact: { paths: ['req.headers', 'req.body', 'body', 'password', '*.password', 'orgIdHash', '*.orgIdHash'], censor: '[redacted]' },
    serializers: {
      // Method and path only: no query string, no headers, no body.
      req: (req: FastifyRequest) => ({ method: req.method, url: req.url.split('?')[0] }),
      res: (res: FastifyReply) => ({ statusCode: res.statusCode }),
      err: (err: FastifyError) => ({ type: err.name, code: err.code, statusCode: err.statusCode }),
    },
  };
}
