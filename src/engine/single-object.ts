/**
 * `idsync sync --object DN`: one object through every step — import, sync, export — with what
 * each step did, for troubleshooting ("why is this user not in the cloud?"). The object is read
 * from its directory again (a full read filtered by DN: slow on a big directory, but always the
 * directory's current truth), then staged, synced and exported like any other change.
 */
import { CloudClient } from '../connectors/cloud/client.js';
import { CLOUD_CONNECTOR, createSourceConnector } from '../connectors/registry.js';
import type { SourceObject } from '../connectors/types.js';
import { IdsyncError } from '../core/errors.js';
import { loadOrCreateKey } from '../credentials/key.js';
import { normalizeDn } from '../ldap/dn.js';
import { extractPasswordAttributes, PasswordPipeline } from '../passwords/index.js';
import { ImportStager } from './connector-space.js';
import type { EngineContext } from './context.js';
import { diffResources, Exporter } from './export.js';
import { reportCleanedValues } from './import.js';
import { RunLog } from './runs.js';
import { Synchronizer, type ConnectorKind } from './sync.js';

type Diff = { attribute: string; before: unknown; after: unknown }[];

export interface ObjectTrace {
  dn: string;
  runId: number;
  import: { connector: string | null; result: 'added' | 'updated' | 'unchanged' | 'deleted' | 'not found'; changes: Diff };
  sync: { metaverseId: number | null; result: 'projected' | 'joined' | 'updated' | 'unchanged' | 'disconnected' | 'out of scope' | 'none'; changes: Diff };
  export: { result: 'added' | 'updated' | 'deleted' | 'unchanged' | 'not exported' | 'error' | 'staging'; cloudId: string | null; changes: Diff; error?: string };
}

interface CsState {
  connector: string;
  anchor: string;
  attrs: string;
  dn: string;
  mv_id: number | null;
}

export async function syncOneObject(ctx: EngineContext, dn: string, options: { allowDeletes?: boolean } = {}): Promise<ObjectTrace> {
  const { db, loaded, credentials } = ctx;
  let dnNorm: string;
  try {
    dnNorm = normalizeDn(dn);
  } catch (err) {
    throw new IdsyncError('LDAP_INVALID_DN', `"${dn}" is not a valid DN`, { hint: 'Quote the DN in the shell, e.g. --object "CN=Ann,OU=Staff,DC=corp,DC=example,DC=com".', cause: err });
  }
  const csByDn = db.prepare<[string], CsState>('SELECT connector, anchor, attrs, dn, mv_id FROM cs_objects WHERE dn_norm = ?');
  const before = csByDn.get(dnNorm);
  const mvBefore = before?.mv_id ? mvAttrs(ctx, before.mv_id) : {};

  const runs = new RunLog(db);
  const runId = runs.begin('object', loaded.config.sync.runRetentionDays);
  const trace: ObjectTrace = {
    dn,
    runId,
    import: { connector: null, result: 'not found', changes: [] },
    sync: { metaverseId: null, result: 'none', changes: [] },
    export: { result: 'not exported', cloudId: null, changes: [] },
  };
  try {
    // Import: find the object in the connector that has (or should have) it.
    const kinds = new Map<string, ConnectorKind>(loaded.config.connectors.map((c) => [c.name, c.type]));
    let found: { connector: string; object: SourceObject } | undefined;
    const candidates = before ? loaded.config.connectors.filter((c) => c.name === before.connector) : loaded.config.connectors;
    for (const cfg of candidates) {
      const connector = createSourceConnector(loaded, cfg, credentials.resolver(cfg.name));
      try {
        search: for await (const page of connector.fullImport()) {
          for (const o of page) {
            if (safeNorm(o.dn) === dnNorm) {
              found = { connector: cfg.name, object: o };
              break search;
            }
          }
        }
      } finally {
        await connector.close().catch(() => undefined);
      }
      if (found) break;
    }
    const importStep = runs.step(runId, found?.connector ?? before?.connector ?? '-', 'import');
    importStep.profile = 'object';
    if (found) {
      // As in a cycle's import: secrets leave the object before it is staged or traced; an NT hash
      // goes to password hash sync.
      const { nt } = extractPasswordAttributes(found.object);
      if (nt && loaded.config.passwordHashSync.enabled) {
        const cloud = new CloudClient(loaded.config.cloud, credentials.resolver(CLOUD_CONNECTOR));
        try {
          await new PasswordPipeline({ db, cloud, events: ctx.events, key: loadOrCreateKey(loaded.dataDir).key }).observeNtHash(found.connector, found.object.anchor, nt);
        } finally {
          await cloud.close();
        }
      }
      const stager = new ImportStager(db, found.connector, kinds.get(found.connector) === 'ad');
      stager.stageDelta([{ kind: 'upsert', object: found.object }], importStep.counts);
      reportCleanedValues(ctx.events, found.connector, stager);
      const after = db.prepare<[string, string], CsState>('SELECT connector, anchor, attrs, dn, mv_id FROM cs_objects WHERE connector = ? AND anchor = ?').get(found.connector, found.object.anchor)!;
      trace.import = {
        connector: found.connector,
        result: importStep.counts.adds ? 'added' : importStep.counts.updates ? 'updated' : 'unchanged',
        changes: diffResources(before ? JSON.parse(before.attrs) : {}, JSON.parse(after.attrs)),
      };
      if (trace.import.result === 'unchanged') db.prepare("UPDATE cs_objects SET pending = 'update' WHERE connector = ? AND anchor = ?").run(found.connector, found.object.anchor);
    } else if (before) {
      new ImportStager(db, before.connector).stageDelta([{ kind: 'delete', anchor: before.anchor }], importStep.counts);
      trace.import = { connector: before.connector, result: 'deleted', changes: [] };
    }
    importStep.end();

    // Sync
    const syncStep = runs.step(runId, 'metaverse', 'sync');
    new Synchronizer(db, {
      kinds,
      rules: loaded.rules,
      joinRules: (loaded.config.rules?.join.length ?? 0) > 0,
      scopeRules: (loaded.config.rules?.scope.length ?? 0) > 0,
    }).run(syncStep);
    syncStep.end();
    const now = found ? db.prepare<[string, string], CsState>('SELECT connector, anchor, attrs, dn, mv_id FROM cs_objects WHERE connector = ? AND anchor = ?').get(found.connector, found.object.anchor) : undefined;
    const mvId = now?.mv_id ?? before?.mv_id ?? null;
    trace.sync.metaverseId = mvId;
    if (!found && before) trace.sync.result = 'disconnected';
    else if (found && !now?.mv_id) trace.sync.result = 'out of scope';
    else if (mvId) {
      const mvAfter = mvAttrs(ctx, mvId);
      trace.sync.changes = diffResources(mvBefore, mvAfter);
      trace.sync.result = !before?.mv_id ? (mvOwner(ctx, mvId) === found?.object.anchor ? 'projected' : 'joined') : trace.sync.changes.length ? 'updated' : 'unchanged';
    }

    // Export (this object only)
    const exportStep = runs.step(runId, CLOUD_CONNECTOR, 'export');
    exportStep.profile = loaded.config.sync.stagingMode ? 'staging' : 'object';
    if (mvId !== null) {
      const exportedBefore = exportedState(ctx, mvId);
      const cloud = new CloudClient(loaded.config.cloud, credentials.resolver(CLOUD_CONNECTOR));
      try {
        const exporter = new Exporter(db, cloud, {
          deletionThreshold: loaded.config.sync.deletionThreshold,
          deletionAction: loaded.config.sync.deletionAction,
          allowDeletes: options.allowDeletes ?? false,
          concurrency: 1,
          bulkSize: 1,
          rules: loaded.rules,
          only: mvId,
          dryRun: loaded.config.sync.stagingMode,
          onNewCloudObjects: loaded.config.passwordHashSync.enabled
            ? (anchors) => void new PasswordPipeline({ db, cloud, events: ctx.events, key: loadOrCreateKey(loaded.dataDir).key }).followCloudObjects(anchors)
            : undefined,
        });
        await exporter.run(exportStep);
        if (loaded.config.sync.stagingMode) {
          const p = exporter.plan[0];
          trace.export = { result: 'staging', cloudId: p?.cloudId ?? exportedBefore.cloudId, changes: p?.changes ?? [] };
        } else {
          const after = exportedState(ctx, mvId);
          const c = exportStep.counts;
          trace.export = {
            result: c.errors ? 'error' : c.adds ? 'added' : c.deletes ? 'deleted' : c.updates ? 'updated' : after.cloudId ? 'unchanged' : 'not exported',
            cloudId: after.cloudId ?? exportedBefore.cloudId,
            changes: diffResources(exportedBefore.doc, after.doc),
            ...(after.error ? { error: after.error } : {}),
          };
        }
        exportStep.end();
      } catch (err) {
        trace.export = { result: 'error', cloudId: exportedBefore.cloudId, changes: [], error: (err as Error).message };
        exportStep.error(err instanceof IdsyncError ? err.code : 'EXPORT_FAILED', (err as Error).message, dn);
        exportStep.end('failed');
      } finally {
        await cloud.close();
      }
    } else exportStep.end('skipped');
    runs.finish(runId, trace.export.result === 'error' ? 'failed' : 'success');
  } catch (err) {
    runs.finish(runId, 'failed', err instanceof IdsyncError ? err : undefined);
    throw err;
  }
  return trace;
}

function safeNorm(dn: string): string {
  try {
    return normalizeDn(dn);
  } catch {
    return dn.toLowerCase();
  }
}

function mvAttrs(ctx: EngineContext, id: number): Record<string, unknown> {
  const r = ctx.db.prepare<[number], { attrs: string }>('SELECT attrs FROM mv_objects WHERE id = ?').get(id);
  return r ? (JSON.parse(r.attrs) as Record<string, unknown>) : {};
}

function mvOwner(ctx: EngineContext, id: number): string | undefined {
  return ctx.db.prepare<[number], { source_anchor: string }>('SELECT source_anchor FROM mv_objects WHERE id = ?').get(id)?.source_anchor;
}

function exportedState(ctx: EngineContext, id: number): { cloudId: string | null; doc: Record<string, unknown>; error: string | null } {
  const r = ctx.db
    .prepare<[number], { cloud_id: string | null; exported_doc: string | null; last_error: string | null }>('SELECT cloud_id, exported_doc, last_error FROM export_objects WHERE mv_id = ?')
    .get(id);
  return { cloudId: r?.cloud_id ?? null, doc: r?.exported_doc ? JSON.parse(r.exported_doc) : {}, error: r?.last_error ?? null };
}
