/**
 * A sync cycle: import from every source connector (delta when possible), sync into the
 * metaverse, export to the cloud. Each step is recorded with its counts and errors. A failed import
 * skips only that connector's deletions; a failed export keeps every change pending for the next
 * cycle. A preview runs import and sync and plans the export without writing it; staging mode
 * never exports.
 */
import { classifyFailure } from '../connectors/cloud/client.js';
import { ScimTarget } from '../connectors/cloud/target.js';
import { CLOUD_CONNECTOR, createCloudClient, createSourceConnector } from '../connectors/registry.js';
import { loadOrCreateKey } from '../credentials/key.js';
import { IdsyncError, toIdsyncError } from '../core/errors.js';
import { EVENTS } from '../events/catalog.js';
import type { EventLog } from '../events/log.js';
import { outboxHasWork, PasswordPipeline } from '../passwords/index.js';
import { assertConnectorsConfigured } from './connector-identity.js';
import type { EngineContext } from './context.js';
import { Exporter, type PlannedExport } from './export.js';
import { EarlyExport } from './pipeline.js';
import { fullImportReader } from './reader/index.js';
import { EngineState, importConnector, sourceHashKey, Watermarks } from './import.js';
import { contentHash } from './stable-hash.js';
import { assertTenantIsOurs, installationId } from './tenant.js';
import { RunLog, type RunRecord, type RunStatus, type StepHandle } from './runs.js';
import { BackgroundCheckpoints } from '../store/checkpoints.js';
import { Synchronizer, type ConnectorKind } from './sync.js';

export interface CycleProgress {
  connector: string;
  step: 'import' | 'sync' | 'export';
  done: number;
}

export interface CycleOptions {
  /** Full import and full sync: re-read and re-evaluate every object instead of only changes. */
  full?: boolean;
  /** Let an export through that exceeds the deletion threshold. */
  allowDeletes?: boolean;
  /** Import and sync, then plan the export without writing anything to the cloud. */
  preview?: boolean;
  onProgress?: (p: CycleProgress) => void;
  /**
   * The running service's password pipeline. A cycle in `idsync serve` queues and delivers through
   * it, so one process has one delivery (one set of changes in flight), not two that send the same
   * user at once; alone (`idsync sync`) a cycle makes its own.
   */
  passwords?: PasswordPipeline;
}

export interface CycleResult extends RunRecord {
  /** The planned exports (preview, or staging mode). */
  plan?: PlannedExport[];
}

/**
 * Objects a cycle imports or exports before its WAL checkpoints move off the event loop
 * (store/checkpoints.ts): a cycle of a few changes never costs a thread.
 */
export const BACKGROUND_CHECKPOINTS_FROM = 2000;

export async function runCycle(ctx: EngineContext, options: CycleOptions = {}): Promise<CycleResult> {
  const { loaded, db, credentials } = ctx;
  // Before anything is written: a connector renamed or removed in the configuration is the
  // admin's to resolve (connector-identity.ts), never a second import under the new name.
  assertConnectorsConfigured(ctx);
  const state = new EngineState(db);
  const staging = loaded.config.sync.stagingMode;
  const profile = options.preview ? 'preview' : options.full ? 'full' : 'cycle';
  const runs = new RunLog(db);
  const runId = runs.begin(profile, loaded.config.sync.runRetentionDays);
  let failed = false;
  let withErrors = false;
  let runError: IdsyncError | undefined;
  let plan: PlannedExport[] | undefined;

  ctx.events.emit(EVENTS.SYNC_CYCLE_STARTED, { runId, profile });
  let failedStep: StepHandle | undefined;

  const endStep = (h: StepHandle, err?: unknown, url?: string) => {
    if (err !== undefined) {
      const e = toIdsyncError(err);
      emitFailure(ctx.events, e, h.connector, url);
      failedStep ??= h;
      h.error(e.code, e.hint ? `${e.message} — ${e.hint}` : e.message);
      h.end('failed');
      failed = true;
      runError ??= e;
      return;
    }
    if (h.end() === 'completed-with-errors') withErrors = true;
  };

  const cloud = createCloudClient(loaded, credentials);
  const checkpoints = BackgroundCheckpoints.for(db);
  const progressed = (done: number) => {
    if (done >= BACKGROUND_CHECKPOINTS_FROM) checkpoints?.start();
  };
  cloud.installation = installationId(db);
  let tenantRefused = false;
  let pipeline: PasswordPipeline | undefined = options.passwords;
  const passwords = () =>
    (pipeline ??= new PasswordPipeline({ db, cloud, events: ctx.events, key: loadOrCreateKey(loaded.dataDir).key, credentialRefused: () => credentials.refusedNow(CLOUD_CONNECTOR) }));

  try {
    const connectors = loaded.config.connectors;
    const kinds = new Map<string, ConnectorKind>();
    for (const cfg of connectors) {
      kinds.set(cfg.name, cfg.type);
      // A changed source (URL, base, scope, filters) makes the saved watermark meaningless.
      const sourceHash = contentHash(cfg);
      if (state.get(sourceHashKey(cfg.name)) !== sourceHash) {
        new Watermarks(db).clear(cfg.name);
        state.set(sourceHashKey(cfg.name), sourceHash);
      }
    }
    // Sync is full when asked, or when the rules changed since the last sync: every object must
    // flow again under the new rules.
    const rulesHash = contentHash({ rules: loaded.config.rules ?? null, connectors: connectors.map((c) => [c.name, c.type]) });
    const previousRulesHash = state.get('rules_hash');
    const fullSync = options.full === true || (previousRulesHash !== undefined && previousRulesHash !== rulesHash);
    const joinRules = (loaded.config.rules?.join.length ?? 0) > 0;
    const scopeRules = (loaded.config.rules?.scope.length ?? 0) > 0;
    const dryRun = options.preview === true || staging;
    const sync = new Synchronizer(db, { kinds, rules: loaded.rules, joinRules, scopeRules });
    const exporter = new Exporter(db, new ScimTarget(cloud), {
      deletionThreshold: loaded.config.sync.deletionThreshold,
      deletionAction: loaded.config.sync.deletionAction,
      allowDeletes: options.allowDeletes ?? false,
      concurrency: loaded.config.cloud.concurrency,
      bulkSize: loaded.config.cloud.bulkSize,
      rules: loaded.rules,
      dryRun,
      onNewCloudObjects: loaded.config.passwordHashSync.enabled
        ? (anchors) => {
            // Password sync's own failure (e.g. an unreadable key) must not fail the export.
            try {
              passwords().followCloudObjects(anchors);
            } catch (err) {
              const e = toIdsyncError(err);
              ctx.events.emit(EVENTS.PHS_BATCH_ERROR, { connector: 'cloud', error: e.message, code: e.code });
            }
          }
        : undefined,
      onProgress: (done) => {
        progressed(done);
        early?.exported(done);
        options.onProgress?.({ connector: CLOUD_CONNECTOR, step: 'export', done });
      },
    });

    // Before the first cloud write: is another installation exporting to this tenant? (engine/tenant.ts)
    const tenantCheck = async () => {
      try {
        await assertTenantIsOurs(ctx, cloud);
      } catch (err) {
        tenantRefused = true;
        if (toIdsyncError(err).code === 'CLOUD_TENANT_SHARED') ctx.events.emit(EVENTS.CLOUD_TENANT_SHARED, { url: loaded.config.cloud.url, ...toIdsyncError(err).details });
        throw err;
      }
    };

    // The overlapped cycle (engine/pipeline.ts): each staged page is synced at once and its users
    // go to the cloud while the next pages are read. Only where the order of the stages cannot
    // matter: nothing exported yet and full imports (no watermark: so no deletion can be pending
    // and the deletion threshold cannot be crossed), no scope or join rules and no full sync (an
    // object's metaverse state depends on its own page only), a real export. Otherwise (every
    // delta cycle, `--full`, a preview) the stages run one after another.
    const overlap = !dryRun && !fullSync && !joinRules && !scopeRules && !exporter.anythingExported() && connectors.every((c) => new Watermarks(db).get(c.name) === undefined);
    const importSteps = new Map<string, StepHandle>();
    let early: EarlyExport | undefined;
    let syncStep: StepHandle | undefined;
    let exportStep: StepHandle | undefined;
    if (overlap) {
      // Steps recorded in their usual order; each marks its own start.
      for (const cfg of connectors) importSteps.set(cfg.name, runs.step(runId, cfg.name, 'import'));
      syncStep = runs.step(runId, 'metaverse', 'sync');
      syncStep.profile = 'delta';
      exportStep = runs.step(runId, CLOUD_CONNECTOR, 'export');
      exportStep.profile = 'export';
      sync.requeueFailed();
      early = new EarlyExport(sync, syncStep, exporter, exportStep, tenantCheck);
    }

    // Import
    for (const cfg of connectors) {
      const step = importSteps.get(cfg.name) ?? runs.step(runId, cfg.name, 'import');
      if (overlap) step.markStarted();
      const connector = createSourceConnector(loaded, cfg, credentials.resolver(cfg.name));
      const reader = fullImportReader(cfg, credentials.resolver(cfg.name));
      try {
        step.profile = await importConnector(db, connector, step, {
          full: options.full ?? false,
          events: ctx.events,
          passwords: loaded.config.passwordHashSync.enabled ? passwords : undefined,
          onProgress: (done) => {
            progressed(done);
            options.onProgress?.({ connector: cfg.name, step: 'import', done });
          },
          onStaged: early ? () => early!.staged() : undefined,
          project: early?.projection(cfg.name),
          room: early ? (users) => early!.room(users) : undefined,
          reader,
        });
        endStep(step);
      } catch (err) {
        endStep(step, err, 'url' in cfg ? cfg.url : cfg.path);
      } finally {
        await reader?.close();
        await connector.close().catch(() => undefined);
      }
    }

    // Sync: what is left (in an overlapped cycle: deletions found by the full import, and the
    // last page)
    syncStep ??= runs.step(runId, 'metaverse', 'sync');
    try {
      if (early) {
        early.finishSync();
      } else {
        if (fullSync) sync.markAllForSync();
        syncStep.profile = fullSync ? 'full' : 'delta';
        sync.run(syncStep);
        if (fullSync) db.prepare('UPDATE mv_objects SET pending_export = 1 WHERE pending_export = 0').run();
      }
      state.set('rules_hash', rulesHash);
      endStep(syncStep);
    } catch (err) {
      endStep(syncStep, err);
    }

    // Export (planned only, in a preview or in staging mode)
    exportStep ??= runs.step(runId, CLOUD_CONNECTOR, 'export');
    if (!early) exportStep.profile = options.preview ? 'preview' : staging ? 'staging' : 'export';
    try {
      if (early) await early.drain();
      else if (!dryRun) await tenantCheck();
      await exporter.run(exportStep);
      if (dryRun) plan = exporter.plan;
      else {
        // A cycle that leaves an object unexported is not a success, whatever the reason.
        const left = exporter.unexported();
        if (left > 0) {
          exportStep.error('EXPORT_PENDING', `${left} object(s) were left unexported (see the errors of this run); the next cycle retries them`);
          ctx.events.emit(EVENTS.EXPORT_LEFT_PENDING, { runId, count: left });
        }
      }
      endStep(exportStep);
    } catch (err) {
      endStep(exportStep, err, loaded.config.cloud.url);
    }

    // Password hashes queued by this or an earlier cycle, now that their users may exist in the
    // cloud; in `serve`, also the ones the service's loop took first (a cycle ends with them
    // answered). Failures here are the password sync's own events (611/652/115), not the cycle's.
    if (!dryRun && !tenantRefused && loaded.config.passwordHashSync.enabled && (pipeline || outboxHasWork(ctx.db))) await passwords().deliverSettled().catch(() => undefined);
  } catch (err) {
    failed = true;
    runError ??= toIdsyncError(err);
  } finally {
    await cloud.close().catch(() => undefined);
    await checkpoints?.close();
  }

  const status: RunStatus = failed ? 'failed' : withErrors ? 'completed-with-errors' : 'success';
  runs.finish(runId, status, runError);
  const run = runs.get(runId)!;
  const exported = run.steps.filter((s) => s.step === 'export');
  const sum = (k: 'adds' | 'updates' | 'deletes') => exported.reduce((n, s) => n + s[k], 0);
  if (status === 'success') ctx.events.emit(EVENTS.SYNC_CYCLE_COMPLETED, { runId, adds: sum('adds'), updates: sum('updates'), deletes: sum('deletes') });
  else if (status === 'completed-with-errors') ctx.events.emit(EVENTS.SYNC_CYCLE_COMPLETED_WITH_ERRORS, { runId, errors: run.errorCount });
  else {
    ctx.events.emit(EVENTS.SYNC_CYCLE_FAILED, {
      runId,
      step: failedStep?.step ?? 'cycle',
      connector: failedStep?.connector ?? '-',
      error: runError?.message ?? 'unknown error',
    });
  }
  return plan ? { ...run, plan } : run;
}

/** The event an admin's runbook expects for a step failure (the incumbent's IDs where they exist). */
function emitFailure(events: EventLog, e: IdsyncError, connector: string, url: string | undefined): void {
  const details = { connector, url: url ?? '-', error: e.message, code: e.code };
  switch (e.code) {
    case 'LDAP_UNREACHABLE':
      events.emit(EVENTS.CONNECTOR_UNREACHABLE, details);
      break;
    case 'LDAP_BIND_FAILED':
      events.emit(EVENTS.AUTH_USER_OR_PASSWORD_INCORRECT, details);
      break;
    case 'LDAP_TLS_FAILED':
      events.emit(EVENTS.CONNECTOR_TLS_FAILED, details);
      break;
    case 'CLOUD_AUTH_FAILED': {
      // Each refusal is said once, when the cloud gives it; a lock is not a wrong password.
      const kind = classifyFailure(e);
      if (kind === 'locked' && e.details.recorded !== true) events.emit(EVENTS.CLOUD_ACCOUNT_LOCKED, { ...details, seconds: e.details.lockedSeconds, account: connector });
      if (kind === 'refused') {
        events.emit(EVENTS.CLOUD_ACCESS_DENIED, details);
        events.emit(EVENTS.AUTH_USER_OR_PASSWORD_INCORRECT, details);
      }
      break;
    }
    case 'CLOUD_UNREACHABLE':
    case 'CLOUD_UNAVAILABLE':
    case 'CLOUD_SERVER_ERROR':
      events.emit(EVENTS.CLOUD_UNAVAILABLE, details);
      break;
    case 'DELETION_THRESHOLD_EXCEEDED':
      events.emit(EVENTS.DELETION_THRESHOLD_EXCEEDED, { connector, ...e.details });
      break;
    default:
      break;
  }
}
