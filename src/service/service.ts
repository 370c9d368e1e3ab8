/**
 * `idsync serve`: the sync service in one process (see docs/service.md). This file is its
 * lifecycle (start, stop, configuration reload) and puts the parts together:
 *
 *   scheduler.ts ──▶ runCycle(ctx) at start and every intervalMs (never two at once)
 *   password pipeline ──▶ delivers queued password hashes to the cloud (durable outbox)
 *   http.ts ──▶ /healthz /readyz /metrics /status, the DC agent's batches and PCNs, the console
 *   health.ts ──▶ what is degraded and not ready; metrics.ts ──▶ Prometheus
 *   ha/ ──▶ on the PostgreSQL store, several nodes: the leader (lease holder) runs the cycles,
 *           delivery and DRS pollers under its fence; a standby serves status and intake (docs/ha.md)
 *
 * The PCN endpoint carries passwords: production listens with TLS. Plain HTTP is refused on any
 * address other than loopback. The service owns the context it is given: stop() closes it.
 */
import { statSync } from 'node:fs';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../config/load.js';
import { storeLocation } from '../config/store.js';
import { parseDuration } from '../config/duration.js';
import type { CloudClient } from '../connectors/cloud/client.js';
import { CLOUD_CONNECTOR, createCloudClient } from '../connectors/registry.js';
import { IdsyncError, toIdsyncError } from '../core/errors.js';
import { loadOrCreateKey } from '../credentials/key.js';
import type { EngineContext } from '../engine/context.js';
import { runCycle, type CycleResult } from '../engine/cycle.js';
import type { RunRecord } from '../engine/runs.js';
import { EVENTS, type EventDefinition } from '../events/catalog.js';
import { EventLog, type EventRecord } from '../events/log.js';
import { PasswordPipeline, type PasswordPipelineOptions } from '../passwords/index.js';
import { DrsPasswordSource } from '../passwords/sources/drs.js';
import { AttrIndex } from '../console/attr-index.js';
import type { SearchBudget } from '../console/search.js';
import { runFenced, type WriteFence } from '../store/fence.js';
import { connectOptions } from '../store/postgres/open.js';
import { LeaderLease } from './ha/lease.js';
import { Leadership } from './ha/leadership.js';
import { healthReport, HealthTransitions, storeUnreachableReport, type HealthReport } from './health.js';
import { DEFAULT_HOST, DEFAULT_INTERVAL_MS, DEFAULT_PORT, DEFAULT_STOP_TIMEOUT_MS } from './defaults.js';
import { createServiceServer, isLoopback, type ServiceLoggerOptions } from './http.js';
import { ServiceMetrics } from './metrics.js';
import { CycleScheduler, type CycleRequest } from './scheduler.js';

const HEALTH_CHECK_MS = 60_000;
/** The console's attribute index catches up after each cycle, and this often besides. */
const ATTR_INDEX_CATCH_UP_MS = 10_000;

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
  /** The console search's budget per page (tests; default src/console/search.ts). */
  consoleSearchBudget?: SearchBudget;
}

export class SyncService {
  private readonly intervalMs: number;
  private readonly host: string;
  private readonly port: number;
  private readonly pipelineEvents: EventLog;
  private readonly cloud: CloudClient;
  /** Modification time of the configuration file last loaded. */
  private configMtime: number | undefined;
  readonly pipeline: PasswordPipeline;
  /** Password sources that poll DCs over MS-DRSR (AD connectors with `passwords: { source: drs }`). */
  readonly drsSources: DrsPasswordSource[] = [];
  private readonly metrics: ServiceMetrics;
  private readonly scheduler: CycleScheduler;
  private readonly transitions: HealthTransitions;

  private app: FastifyInstance | undefined;
  private url: string | null = null;
  private startedAt: number | null = null;
  private running = false;
  private stopping: Promise<void> | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private attrIndexTimer: NodeJS.Timeout | undefined;
  /** The console search's attribute index: a projection of the metaverse, off the cycle's path. */
  readonly attrIndex: AttrIndex;
  private lastSkipped: { at: string; reason: string } | null = null;
  /** The last health report read from the store (what /status shows of it while the store is down). */
  private lastHealth: { report: HealthReport; at: Date } | undefined;
  /** On the PostgreSQL store: this node's role among several (docs/ha.md). Undefined on SQLite: one node. */
  readonly leadership: Leadership | undefined;

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
    this.metrics = new ServiceMetrics(ctx.db, () => this.health().degraded.length > 0);
    this.attrIndex = new AttrIndex(ctx.db, ctx.loaded.config.console.indexedAttributes);
    this.scheduler = new CycleScheduler(this.intervalMs, (request) => this.cycleOnce(request), () => {
      this.checkHealth();
      this.catchUpAttrIndex();
    });
    this.transitions = new HealthTransitions(ctx.events, (msg) => this.log('error', msg));
    this.pipelineEvents = new EventLog(ctx.db, { sinks: [{ write: (r) => this.onPipelineEvent(r) }] });
    this.cloud = createCloudClient(ctx.loaded, ctx.credentials);
    this.pipeline = new PasswordPipeline({
      db: ctx.db,
      cloud: this.cloud,
      events: this.pipelineEvents,
      key: loadOrCreateKey(ctx.loaded.dataDir).key,
      credentialVersion: () => ctx.credentials.info(CLOUD_CONNECTOR)?.changedAt,
      credentialRefused: () => ctx.credentials.refusedNow(CLOUD_CONNECTOR),
      log: (level, msg) => this.log(level, msg),
      ...(opts.passwords ? { options: opts.passwords } : {}),
    });
    const store = ctx.loaded.config.store;
    if (store.type === 'postgres') {
      const location = storeLocation(ctx.loaded);
      if (location.type !== 'postgres') throw new IdsyncError('INTERNAL', 'the store location does not match store.type');
      const ha = ctx.loaded.config.ha;
      const lease = new LeaderLease({
        connection: connectOptions(location),
        node: ha.node ?? hostname(),
        ttlMs: parseDuration(ha.leaseTtl),
        renewMs: parseDuration(ha.renewInterval),
      });
      // A leader paused (SIGSTOP, a frozen VM) inside a write transaction holds the lease row's
      // fence lock, and a takeover waits for it: PostgreSQL ends such a transaction after one lease
      // time, so the pause cannot block the takeover for longer. The engine's transactions never
      // sit idle that long on their own (their statements follow one another synchronously).
      ctx.db.exec(`SET idle_in_transaction_session_timeout = ${Math.ceil(lease.ttlMs)}`);
      this.leadership = new Leadership(lease, ctx.events, {
        announce: (fence) => this.announceFence(fence),
        start: () => this.startDuties(),
        stop: () => this.stopDuties(),
      }, (level, msg) => this.log(level, msg));
      const leadership = this.leadership;
      this.metrics.watchHa(() => leadership.status());
      this.leadership.onRole((role) => {
        this.metrics.role(role);
        setImmediate(() => this.checkHealth());
      });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Lifecycle
  // ---------------------------------------------------------------------------------------------

  /** Listens, starts the password pipeline and the first cycle (not awaited: see idle()). */
  async start(): Promise<{ url: string }> {
    if (this.running || this.stopping) throw new IdsyncError('INTERNAL', 'the service was already started');
    const app = createServiceServer({
      ctx: this.ctx,
      pipeline: this.pipeline,
      registry: this.metrics.registry,
      health: () => this.health(),
      runNow: (request) => this.runNow(request),
      idle: () => this.idle(),
      attrIndex: this.attrIndex,
      ...(this.opts.consoleSearchBudget ? { searchBudget: this.opts.consoleSearchBudget } : {}),
      host: this.host,
      tls: this.opts.tls,
      logger: this.opts.logger,
    });
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
    // One node (SQLite): it leads. Several (PostgreSQL): the lease decides, and a standby only serves.
    if (!this.leadership) this.startDuties();
    this.ctx.events.emit(EVENTS.SERVICE_STARTED, { version: process.env.npm_package_version ?? '0.1.0', pid: process.pid, url: this.url });
    try {
      this.configMtime = statSync(this.ctx.loaded.file).mtimeMs;
    } catch {
      /* a configuration given in memory (tests) has no file to watch */
    }
    this.healthTimer = setInterval(() => {
      void this.reloadConfigurationIfChanged()
        .catch((err: unknown) => this.log('error', `the configuration could not be reloaded: ${toIdsyncError(err).message}`))
        .then(() => this.checkHealth());
    }, HEALTH_CHECK_MS);
    this.attrIndexTimer = setInterval(() => this.catchUpAttrIndex(), ATTR_INDEX_CATCH_UP_MS);
    if (this.leadership) {
      this.leadership.lease.describe(this.url);
      this.leadership.start();
    }
    return { url: this.url };
  }

  /** What the leader does: the cycles, password delivery and the DRS pollers. */
  private startDuties(): void {
    if (!this.running) return;
    if (this.ctx.loaded.config.passwordHashSync.enabled) {
      this.pipeline.start();
      this.startDrsSources();
    }
    this.scheduler.start();
  }

  /** A leader that lost its lease stops at once; the cycle in flight finds its writes refused. */
  private async stopDuties(): Promise<void> {
    this.scheduler.halt();
    await Promise.all(this.drsSources.splice(0).map((d) => d.stop()));
    await this.pipeline.stop();
  }

  /** A new term's first write: the cloud directory learns the token, so an older leader is refused from now on. */
  private async announceFence(fence: WriteFence): Promise<void> {
    fence.assertHeld();
    const res = await this.cloud.api('POST', '/api/v1/syncFence', {});
    // A cloud directory without the endpoint (404) fences on the token of each write instead.
    if (res.status >= 400 && res.status !== 404) this.log('warn', `the cloud directory did not take fencing token ${fence.token} (HTTP ${res.status})`);
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
    this.scheduler.halt();
    if (this.healthTimer) clearInterval(this.healthTimer);
    if (this.attrIndexTimer) clearInterval(this.attrIndexTimer);
    this.attrIndex.close();
    if (wasRunning) this.report(EVENTS.SERVICE_STOPPING, { reason });
    await this.app?.close().catch(() => undefined);
    if (!(await this.scheduler.settle(timeoutMs))) this.log('warn', `the sync cycle did not finish within ${timeoutMs} ms; it is marked interrupted at the next start`);
    await Promise.all(this.drsSources.map((d) => d.stop()));
    await this.pipeline.stop();
    // Released last, once nothing of this node writes any more: a standby takes over at once.
    await this.leadership?.stop();
    await this.cloud.close().catch(() => undefined);
    if (wasRunning) this.report(EVENTS.SERVICE_STOPPED, {});
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
        log: (level, msg) => this.log(level, msg),
      });
      this.drsSources.push(src);
      src.start();
    }
  }

  /**
   * Runs a cycle now, or returns the one in flight. Resolves undefined when skipped. With a request
   * (the console's full sync, preview, approved deletions) a cycle in flight is waited for first.
   */
  runNow(request?: CycleRequest): Promise<CycleResult | undefined> {
    return this.scheduler.runNow(request);
  }

  /** Resolves when no cycle is in flight. */
  idle(): Promise<void> {
    return this.scheduler.idle();
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
      this.report(EVENTS.CONFIGURATION_RELOAD_FAILED, { file, error: toIdsyncError(err).message });
      return;
    }
    if (next.dataDir !== before.dataDir || next.config.cloud.url !== before.config.cloud.url) {
      this.report(EVENTS.CONFIGURATION_RELOAD_FAILED, { file, error: 'the data directory or the cloud URL changed; run `idsync service restart` to use them' });
      return;
    }
    this.ctx.loaded = next;
    this.report(EVENTS.CONFIGURATION_RELOADED, { file });
    const phsBefore = before.config.passwordHashSync.enabled;
    const phsNow = next.config.passwordHashSync.enabled;
    // DRS sources restart with the new connector settings (their state is in the database)
    await Promise.all(this.drsSources.splice(0).map((d) => d.stop()));
    if (phsBefore && !phsNow) await this.pipeline.stop();
    // Delivery and the pollers are the leader's (a standby starts them when it takes over).
    this.asLeader(() => {
      if (!phsBefore && phsNow) this.pipeline.start();
      if (phsNow && this.running) this.startDrsSources();
    });
  }

  /** Runs fn if this node leads: at once with one node, under the term's fence with several. */
  private asLeader(fn: () => void): void {
    if (!this.leadership) return fn();
    const fence = this.leadership.lease.fence();
    if (fence) runFenced(fence, fn);
  }

  private async cycleOnce(request: CycleRequest = {}): Promise<CycleResult | undefined> {
    // Several nodes: only the leader runs a cycle, and all of it under its term's fence.
    let fence: WriteFence | undefined;
    if (this.leadership) {
      fence = this.leadership.lease.fence();
      if (!fence) {
        this.metrics.cycle('skipped');
        this.lastSkipped = { at: new Date().toISOString(), reason: 'this node is a standby: the leader runs the cycles' };
        return undefined;
      }
    }
    try {
      await this.reloadConfigurationIfChanged();
      // The cycle queues and delivers passwords through this service's pipeline: one delivery per process.
      const options = { ...request, passwords: this.pipeline };
      const run = fence ? await runFenced(fence, () => runCycle(this.ctx, options)) : await runCycle(this.ctx, options);
      const lost = run.errors.find((e) => e.code === 'LEASE_LOST');
      if (fence && lost) this.leadership?.fenced(fence.token, 'the cloud directory or the database');
      this.metrics.cycle(run);
      this.recordCloudCredential(run);
      this.log(run.status === 'success' ? 'info' : 'warn', `sync cycle run ${run.id}: ${run.status}${run.error ? ` (${run.error.code})` : ''}`);
      return run;
    } catch (err) {
      const e = toIdsyncError(err);
      if (e.code === 'LEASE_LOST') {
        if (fence) this.leadership?.fenced(fence.token, String(e.details.fencedBy ?? 'this node'), typeof e.details.highest === 'number' ? e.details.highest : undefined);
        this.metrics.cycle('failed');
        this.log('warn', `sync cycle stopped: ${e.message}`);
        return undefined;
      }
      if (e.code === 'RUN_IN_PROGRESS') {
        this.metrics.cycle('skipped');
        this.lastSkipped = { at: new Date().toISOString(), reason: e.message };
        this.log('info', `sync cycle skipped: ${e.message}`);
        return undefined;
      }
      this.metrics.cycle('failed');
      this.log('error', `sync cycle could not run: ${e.code}: ${e.message}`);
      return undefined;
    }
  }

  /** An export that reached the cloud is a test of its credential; so is one it refused. */
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
    const state = {
      running: this.running,
      startedAt: this.startedAt,
      url: this.url,
      intervalMs: this.intervalMs,
      cycleInProgress: this.scheduler.inProgress,
      nextAt: this.scheduler.nextAt,
      lastSkipped: this.lastSkipped,
      ...(this.leadership ? { ha: this.leadership.status() } : {}),
    };
    try {
      const report = healthReport(this.ctx, state);
      this.lastHealth = { report, at: new Date() };
      return report;
    } catch (err) {
      return storeUnreachableReport(this.lastHealth, state, toIdsyncError(err));
    }
  }

  /** Brings the console's attribute index up to date, in batches between other work. */
  private catchUpAttrIndex(): void {
    // Several nodes (PostgreSQL): the leader keeps the shared index, so two nodes never race on its watermark.
    if (!this.running || (this.leadership && this.leadership.lease.token === 0)) return;
    this.attrIndex.catchUp().catch((err: unknown) => this.log('warn', `the console's attribute index could not catch up: ${toIdsyncError(err).message}`));
  }

  /**
   * Emits 6110 for each check that starts failing and 6111 for each that recovers. Runs after each
   * cycle and on a timer: it must not throw (neither caller could handle it).
   */
  private checkHealth(): void {
    if (!this.running) return;
    try {
      this.transitions.update(this.health());
    } catch (err) {
      this.log('error', `health check failed: ${toIdsyncError(err).message}`);
    }
  }

  private onPipelineEvent(r: EventRecord): void {
    // Health follows the cloud's answers at once: degraded when it stops answering or refuses,
    // recovered (6111) as soon as a batch or a ping gets through.
    const delivered = r.id === EVENTS.PHS_BATCH_END.id && Number(r.details.delivered) > 0;
    // A delivery refused for its fencing token: another node leads (docs/ha.md).
    if (r.details.code === 'LEASE_LOST' && this.leadership) {
      const token = this.leadership.lease.token;
      if (token !== 0) setImmediate(() => this.leadership?.fenced(token, 'the cloud directory or the database'));
    }
    if (delivered || [EVENTS.PHS_HEARTBEAT.id, EVENTS.CLOUD_UNAVAILABLE.id, EVENTS.CLOUD_ACCESS_DENIED.id, EVENTS.CLOUD_ACCOUNT_LOCKED.id].includes(r.id)) {
      setImmediate(() => this.checkHealth());
    }
    this.metrics.batch(r);
  }

  /** An event where a throw would stop a shutdown or a reload half-way (EventLog.tryEmit). */
  private report(def: EventDefinition, details: Record<string, unknown>): void {
    this.ctx.events.tryEmit(def, details, (msg) => this.log('error', msg));
  }

  private log(level: 'info' | 'warn' | 'error', msg: string): void {
    this.app?.log[level](msg);
  }
}
