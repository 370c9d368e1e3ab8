/**
 * `idsync sync --object DN`: one object through every step — import, sync, export — with what
 * each step did, for troubleshooting ("why is this user not in the cloud?"). The object is read
 * from its directory again (a full read filtered by DN: slow on a big directory, but always the
 * directory's current truth), then staged, synced and exported like any other change.
 */
import { NoSuchObjectError } from 'ldapts';
import { ScimTarget } from '../connectors/cloud/target.js';
import { CLOUD_CONNECTOR, createCloudClient, createSourceConnector } from '../connectors/registry.js';
import type { SourceObject } from '../connectors/types.js';
import { IdsyncError } from '../core/errors.js';
import { AD_DEFAULT_GROUP_FILTER, AD_DEFAULT_USER_FILTER } from '../connectors/ad/index.js';
import { LDAP_DEFAULT_GROUP_FILTER, LDAP_DEFAULT_USER_FILTER } from '../connectors/ldap/index.js';
import type { SourceConnectorConfig } from '../config/schema.js';
import { connectLdap } from '../ldap/client.js';
import { isDnUnder, normalizeDn, type DnUnicode } from '../ldap/dn.js';
import { loadOrCreateKey } from '../credentials/key.js';
import { extractPasswordAttributes, PasswordPipeline } from '../passwords/index.js';
import { ImportStager } from './connector-space.js';
import { assertConnectorsConfigured } from './connector-identity.js';
import type { EngineContext } from './context.js';
import { diffResources, Exporter } from './export.js';
import { reportCleanedValues } from './import.js';
import { RunLog } from './runs.js';
import { Synchronizer, type ConnectorKind } from './sync.js';
import { assertTenantIsOurs, installationId } from './tenant.js';

type Diff = { attribute: string; before: unknown; after: unknown }[];

export interface ObjectTrace {
  dn: string;
  runId: number;
  import: { connector: string | null; result: 'added' | 'updated' | 'unchanged' | 'deleted' | 'not found'; changes: Diff };
  sync: { metaverseId: number | null; result: 'projected' | 'joined' | 'updated' | 'unchanged' | 'disconnected' | 'out of scope' | 'none'; changes: Diff };
  export: { result: 'added' | 'updated' | 'deleted' | 'unchanged' | 'not exported' | 'error' | 'staging'; cloudId: string | null; changes: Diff; error?: string };
  /** Why the object is not (or no longer) synced, when it is not: the question `--object` answers. */
  why?: Absence;
}

/** Why an object is not synced, most specific cause first. */
export interface Absence {
  code: 'OUTSIDE_BASE' | 'OUTSIDE_OU_SCOPE' | 'EXCLUDED_OU' | 'NOT_FOUND' | 'NOT_USER_OR_GROUP' | 'SCOPE_RULE';
  message: string;
  connector?: string;
  /** The configuration key that decided it (e.g. connectors.0.scope.include, rules.scope.1). */
  rule?: string;
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
  assertConnectorsConfigured(ctx);
  let dnNorm: string;
  try {
    dnNorm = normalizeDn(dn);
  } catch (err) {
    throw new IdsyncError('LDAP_INVALID_DN', `"${dn}" is not a valid DN`, { hint: 'Quote the DN in the shell, e.g. --object "CN=Ann,OU=Staff,DC=corp,DC=example,DC=com".', cause: err });
  }
  const csByDn = db.prepare<[string], CsState>('SELECT connector, anchor, attrs, dn, mv_id FROM cs_objects WHERE dn_norm = ?');
  // AD connector spaces keep Unicode code points apart (dnUnicodeOf): look the DN up in that form too.
  const before = csByDn.get(dnNorm) ?? csByDn.get(normalizeDn(dn, 'exact'));
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
            if (cfg.type === 'ad' ? safeNorm(o.dn, 'exact') === normalizeDn(dn, 'exact') : safeNorm(o.dn) === dnNorm) {
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
        const cloud = createCloudClient(loaded, credentials);
        try {
          await new PasswordPipeline({ db, cloud, events: ctx.events, key: loadOrCreateKey(loaded.dataDir).key, credentialRefused: () => credentials.refusedNow(CLOUD_CONNECTOR) }).observeNtHash(found.connector, found.object.anchor, nt);
        } finally {
          await cloud.close();
        }
      }
      const stager = new ImportStager(db, found.connector, kinds.get(found.connector));
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
      new ImportStager(db, before.connector, kinds.get(before.connector)).stageDelta([{ kind: 'delete', anchor: before.anchor }], importStep.counts);
      trace.import = { connector: before.connector, result: 'deleted', changes: [] };
    }
    if (!found) trace.why = await explainAbsence(ctx, dn);
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
    else if (found && !now?.mv_id) {
      trace.sync.result = 'out of scope';
      const memberOf = db.prepare<[string, string, string], { x: number }>(
        `SELECT 1 AS x FROM cs_objects g JOIN cs_members m ON m.connector = g.connector AND m.group_anchor = g.anchor
         WHERE g.connector = ? AND g.dn_norm = ? AND m.member_dn = ? LIMIT 1`,
      );
      const excluded = loaded.rules.explainScope(found.connector, found.object, (g) => memberOf.get(found.connector, g, dnNorm) !== undefined);
      if (excluded) {
        trace.why = { code: 'SCOPE_RULE', connector: found.connector, rule: excluded.rule, message: `excluded by the scope rule ${excluded.rule} of connector "${found.connector}": ${excluded.reason}` };
      }
    }
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
      const cloud = createCloudClient(loaded, credentials);
      cloud.installation = installationId(db);
      try {
        if (!loaded.config.sync.stagingMode) await assertTenantIsOurs(ctx, cloud);
        const exporter = new Exporter(db, new ScimTarget(cloud), {
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

function safeNorm(dn: string, unicode: DnUnicode = 'nfc'): string {
  try {
    return normalizeDn(dn, unicode);
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

function connectorFilters(cfg: SourceConnectorConfig): { user: string; group: string } {
  if (cfg.type === 'ad') return { user: cfg.userFilter ?? AD_DEFAULT_USER_FILTER, group: cfg.groupFilter ?? AD_DEFAULT_GROUP_FILTER };
  if (cfg.type === 'ldap') return { user: cfg.userFilter ?? LDAP_DEFAULT_USER_FILTER, group: cfg.groupFilter ?? LDAP_DEFAULT_GROUP_FILTER };
  return { user: 'user entries', group: 'group entries' };
}

/**
 * Why no connector's import returned `dn`: outside every base DN, outside a connector's OU scope,
 * absent from its directory, or there but neither a user nor a group to it. Read-only.
 */
async function explainAbsence(ctx: EngineContext, dn: string): Promise<Absence> {
  const connectors = ctx.loaded.config.connectors;
  const under = connectors.map((c, i) => ({ c, i })).filter(({ c }) => c.type === 'ldif' || isDnUnder(dn, c.baseDn));
  if (under.length === 0) {
    const bases = connectors.map((c) => `${c.name}: ${c.type === 'ldif' ? c.path : c.baseDn}`).join('; ');
    return { code: 'OUTSIDE_BASE', message: `no connector reads ${dn}: it is under none of their base DNs (${bases})` };
  }
  let outOfScope: Absence | undefined;
  const inScope: { c: SourceConnectorConfig; i: number }[] = [];
  for (const { c, i } of under) {
    const include = c.scope.include;
    const excludedBy = c.scope.exclude.find((e) => isDnUnder(dn, e));
    if (include.length > 0 && !include.some((b) => isDnUnder(dn, b))) {
      outOfScope ??= {
        code: 'OUTSIDE_OU_SCOPE',
        connector: c.name,
        rule: `connectors.${i}.scope.include`,
        message: `outside the scope of connector "${c.name}": not under any of its scope.include OUs (${include.join('; ')})`,
      };
    } else if (excludedBy) {
      outOfScope ??= { code: 'EXCLUDED_OU', connector: c.name, rule: `connectors.${i}.scope.exclude`, message: `outside the scope of connector "${c.name}": under its scope.exclude OU ${excludedBy}` };
    } else inScope.push({ c, i });
  }
  if (inScope.length === 0 && outOfScope) return outOfScope;
  for (const { c } of inScope) {
    if (c.type === 'ldif') continue;
    const conn = await connectLdap({ url: c.url, bindDn: c.bindDn, tls: c.tls, timeoutMs: c.timeoutMs, connectorName: c.name }, ctx.credentials.resolver(c.name));
    try {
      const r = await conn.client.search(dn, { scope: 'base', filter: '(objectClass=*)', attributes: ['objectClass'] }).catch((err: unknown) => {
        if (err instanceof NoSuchObjectError) return undefined;
        throw err;
      });
      if (r && r.searchEntries.length > 0) {
        const f = connectorFilters(c);
        const classes = ([] as unknown[]).concat(r.searchEntries[0]!.objectClass ?? []).map(String).join(', ');
        return {
          code: 'NOT_USER_OR_GROUP',
          connector: c.name,
          message: `${dn} exists in connector "${c.name}" (objectClass ${classes}) but matches neither its user filter ${f.user} nor its group filter ${f.group}`,
        };
      }
    } finally {
      await conn.close();
    }
  }
  const where = inScope.map(({ c }) => (c.type === 'ldif' ? `"${c.name}" (file ${c.path})` : `"${c.name}" (${c.url})`)).join(', ');
  return { code: 'NOT_FOUND', ...(inScope.length === 1 ? { connector: inScope[0]!.c.name } : {}), message: `${dn} does not exist in connector ${where}: check the DN (spelling, OU)` };
}
