/**
 * A source connector's identity is its `name` in idsync.yaml: every row of its state is keyed by it
 * (connector space, watermarks, password state, credential, run history). So a name that leaves
 * the configuration is never guessed at:
 *  - every cycle first checks that the store holds no connector space of a connector the
 *    configuration does not name (`assertConnectorsConfigured`), and refuses with
 *    CONNECTOR_NOT_CONFIGURED before it touches anything — otherwise a renamed connector is imported
 *    again under its new name, projects a second metaverse object per person, and its export
 *    collides with the old one's cloud ids (a raw UNIQUE failure on export_objects);
 *  - `idsync connectors rename OLD NEW` moves every row in one transaction (`renameConnector`);
 *  - `idsync connectors forget OLD` removes a connector deliberately: its objects leave the
 *    metaverse as if deleted at the source, and the next cycle's export deletes what only it
 *    contributed, under the deletion threshold (`forgetConnector`).
 */
import type { SourceConnectorConfig } from '../config/schema.js';
import { IdsyncError, isIdsyncError } from '../core/errors.js';
import { EVENTS } from '../events/catalog.js';
import { forgetPasswordConnector, passwordConnectorNames, passwordStateCount, renamePasswordConnector } from '../passwords/connector-rows.js';
import type { Database } from '../store/database.js';
import type { EngineContext } from './context.js';
import { EngineState, lastFullImportKey, sourceHashKey } from './import.js';
import { RunLog } from './runs.js';
import { contentHash } from './stable-hash.js';
import { Synchronizer } from './sync.js';

/** The names of credentials that are not source connectors (connectors/registry.ts, config/schema.ts). */
const NOT_SOURCE_CONNECTORS = new Set(['cloud', 'agent']);

/**
 * The connectors that have a connector space, in name order: a loose index scan over the leading
 * column of cs_objects' primary key (one index probe per connector, not a read of every object),
 * so the check before every cycle costs the same with a thousand objects or a million.
 */
export function connectorSpaceNames(db: Database): string[] {
  return db
    .prepare<[], { name: string }>(
      `WITH RECURSIVE c(name) AS (
         SELECT MIN(connector) FROM cs_objects
         UNION ALL
         SELECT (SELECT MIN(connector) FROM cs_objects WHERE connector > c.name) FROM c WHERE c.name IS NOT NULL
       )
       SELECT name FROM c WHERE name IS NOT NULL`,
    )
    .all()
    .map((r) => r.name);
}

export interface ConnectorSpaceCounts {
  objects: number;
  users: number;
  groups: number;
}

export function connectorSpaceCounts(db: Database, connector: string): ConnectorSpaceCounts {
  const rows = db
    .prepare<[string], { object_type: string; n: number }>('SELECT object_type, COUNT(*) AS n FROM cs_objects WHERE connector = ? GROUP BY object_type')
    .all(connector);
  const of = (t: string) => Number(rows.find((r) => r.object_type === t)?.n ?? 0);
  return { objects: rows.reduce((n, r) => n + Number(r.n), 0), users: of('user'), groups: of('group') };
}

export interface UnconfiguredConnector {
  name: string;
  objects: number;
}

/** Connectors whose connector space is in the store although the configuration does not name them. */
export function unconfiguredConnectors(ctx: EngineContext, inStore: readonly string[] = connectorSpaceNames(ctx.db)): UnconfiguredConnector[] {
  const configured = new Set(ctx.loaded.config.connectors.map((c) => c.name));
  return inStore
    .filter((n) => !configured.has(n))
    .map((name) => ({ name, objects: connectorSpaceCounts(ctx.db, name).objects }));
}

/** `"hr" (5 objects), "old" (1 object)`: how the refusal, health and doctor name them. */
export function describeUnconfigured(unknown: readonly UnconfiguredConnector[]): string {
  return unknown.map((u) => `"${u.name}" (${u.objects} object${u.objects === 1 ? '' : 's'})`).join(', ');
}

/** The two commands that resolve an unconfigured connector, as the refusal's hint words them. */
export interface UnconfiguredFix {
  rename: string;
  forget: string;
}

/**
 * The fix for connector `name`: the rename names a configured connector that has no state under
 * its name yet (`inStore`: the names the store holds state under) — most likely the new name.
 */
export function unconfiguredFix(ctx: EngineContext, name: string, inStore: readonly string[] = connectorSpaceNames(ctx.db)): UnconfiguredFix {
  const newName = ctx.loaded.config.connectors.map((c) => c.name).find((n) => !inStore.includes(n)) ?? 'NEW';
  return { rename: `idsync connectors rename ${name} ${newName}`, forget: `idsync connectors forget ${name}` };
}

/**
 * The check at the start of every cycle (sync, serve, preview, `sync --object`): refuses, before
 * anything is written, when the store holds a connector space the configuration does not name.
 * The service's health (service/health.ts) and `idsync doctor` (doctor/checks/connector-spaces.ts)
 * ask `unconfiguredConnectors` the same question, so they say so while the cycles are refused.
 */
export function assertConnectorsConfigured(ctx: EngineContext): void {
  const inStore = connectorSpaceNames(ctx.db);
  const unknown = unconfiguredConnectors(ctx, inStore);
  if (unknown.length === 0) return;
  const listed = describeUnconfigured(unknown);
  const fix = unconfiguredFix(ctx, unknown[0]!.name, inStore);
  ctx.events.emit(EVENTS.CONNECTOR_NOT_CONFIGURED, { connectors: listed, names: unknown.map((u) => u.name) });
  throw new IdsyncError('CONNECTOR_NOT_CONFIGURED', `the store holds the connector space of source connector${unknown.length === 1 ? '' : 's'} ${listed}, which ${ctx.loaded.file} does not name; the cycle was refused and nothing was changed`, {
    hint: `If you renamed it, run \`${fix.rename}\`; if you removed it on purpose, run \`${fix.forget}\` (what only it contributed is deleted from the cloud at the next cycle, under the deletion threshold).`,
    details: { connectors: unknown, file: ctx.loaded.file },
  });
}

/** What the store holds under one connector name. */
export interface StoredConnector extends ConnectorSpaceCounts {
  name: string;
  /** Its type in the configuration; null when only the store knows it. */
  type: SourceConnectorConfig['type'] | null;
  configured: boolean;
  watermark: boolean;
  passwordState: number;
  credential: boolean;
}

function watermarkOf(db: Database, connector: string): boolean {
  return db.prepare<[string], { x: number }>('SELECT 1 AS x FROM watermarks WHERE connector = ?').get(connector) !== undefined;
}

function storedState(ctx: EngineContext, name: string): StoredConnector {
  const cfg = ctx.loaded.config.connectors.find((c) => c.name === name);
  return {
    name,
    type: cfg?.type ?? null,
    configured: cfg !== undefined,
    ...connectorSpaceCounts(ctx.db, name),
    watermark: watermarkOf(ctx.db, name),
    passwordState: passwordStateCount(ctx.db, name),
    credential: ctx.credentials.has(name),
  };
}

const holdsState = (c: StoredConnector): boolean => c.objects > 0 || c.watermark || c.passwordState > 0 || c.credential;

/** `idsync connectors list`: the configured connectors, then those only the store knows. */
export function listConnectors(ctx: EngineContext): StoredConnector[] {
  const names = new Set(ctx.loaded.config.connectors.map((c) => c.name));
  const storeOnly = new Set<string>(connectorSpaceNames(ctx.db));
  for (const r of ctx.db.prepare<[], { connector: string }>('SELECT connector FROM watermarks').all()) storeOnly.add(r.connector);
  for (const c of ctx.credentials.list()) if (!NOT_SOURCE_CONNECTORS.has(c.name)) storeOnly.add(c.name);
  for (const n of names) storeOnly.delete(n);
  return [...names, ...[...storeOnly].sort()].map((n) => storedState(ctx, n));
}

/**
 * `idsync doctor`'s question, wider than the cycle's: every connector the configuration does not
 * name whose objects (connector space) or password rows (phs_users: fingerprints, queued changes)
 * the store holds — both are what `rename` moves and `forget` removes. The password rows are read
 * once in full (phs_users has no index by connector), so the cycle's check does not ask this.
 */
export function unconfiguredStoredConnectors(ctx: EngineContext): { connectors: StoredConnector[]; inStore: string[] } {
  const configured = new Set(ctx.loaded.config.connectors.map((c) => c.name));
  const inStore = [...new Set([...connectorSpaceNames(ctx.db), ...passwordConnectorNames(ctx.db)])].sort();
  const connectors = inStore
    .filter((n) => !configured.has(n) && !NOT_SOURCE_CONNECTORS.has(n))
    .map((n) => storedState(ctx, n))
    .filter((c) => c.objects > 0 || c.passwordState > 0);
  return { connectors, inStore };
}

export interface RenameResult {
  from: string;
  to: string;
  moved: StoredConnector;
  /** The credential: moved (re-sealed) to the new name, the one already set for the new name kept, or none. */
  credential: 'moved' | 'kept-new' | 'none';
}

export interface RenameOptions {
  /**
   * The connector's configuration under both names: when the saved source hash is the old one's,
   * the new one's is saved, so the rename keeps the delta watermark (the source did not change).
   */
  config?: SourceConnectorConfig;
}

/**
 * Moves every row that names connector `from` to `to` in ONE transaction: connector space and its
 * members, watermark and engine state, run history, password state, credential (re-sealed: the
 * name is its associated data) and refusals. Any failure (a clash with rows left under `to`)
 * undoes all of it. The caller has checked the configuration side.
 */
export function renameConnector(ctx: EngineContext, from: string, to: string, options: RenameOptions = {}): RenameResult {
  const { db } = ctx;
  if (from === to) throw new IdsyncError('CONFIG_INVALID', `the old and the new name are both "${from}"`, { hint: 'Give the name the store knows, then the new one.' });
  if (NOT_SOURCE_CONNECTORS.has(from) || NOT_SOURCE_CONNECTORS.has(to)) {
    throw new IdsyncError('CONFIG_INVALID', `"${NOT_SOURCE_CONNECTORS.has(from) ? from : to}" is not a source connector name (it names a credential of its own)`, {
      hint: 'Rename source connectors only; `idsync connectors list` shows them.',
    });
  }
  let result: RenameResult | undefined;
  try {
    db.transaction(() => {
      // Refused while a run of another live process holds the engine (a cycle of the service, say).
      new RunLog(db).assertIdle();
      const old = storedState(ctx, from);
      if (!holdsState(old)) {
        throw new IdsyncError('CONNECTOR_UNKNOWN', `the store holds nothing for connector "${from}": there is nothing to rename`, {
          hint: 'List what the store knows with `idsync connectors list`.',
          details: { connector: from },
        });
      }
      const taken = storedState(ctx, to);
      // A credential alone under the new name does not block: the admin set it for that name
      // (`idsync credentials set NEW` after editing the file) and it is kept.
      if (taken.objects > 0 || taken.watermark || taken.passwordState > 0) {
        const what = [taken.objects > 0 ? `${taken.objects} objects` : '', taken.watermark ? 'a watermark' : '', taken.passwordState > 0 ? 'password state' : '']
          .filter(Boolean)
          .join(', ');
        throw new IdsyncError('CONNECTOR_NAME_IN_USE', `the store already holds ${what} under "${to}"; nothing was changed`, {
          hint: `Pick another name, or forget the other connector first (\`idsync connectors forget ${to}\` once it is out of idsync.yaml).`,
          details: { connector: to },
        });
      }
      renameEngineRows(db, from, to, options.config);
      renamePasswordConnector(db, from, to);
      let credential: RenameResult['credential'] = 'none';
      if (taken.credential) {
        ctx.credentials.forget(from);
        credential = 'kept-new';
      } else if (ctx.credentials.rename(from, to)) credential = 'moved';
      result = { from, to, moved: old, credential };
    })();
  } catch (err) {
    if (isIdsyncError(err)) throw err;
    throw new IdsyncError('STORE_FAILED', `renaming connector "${from}" to "${to}" failed, and nothing was changed: ${(err as Error).message}`, {
      hint: 'A row under the new name is in the way (left by an earlier connector of that name): pick another name, or forget that connector first.',
      details: { from, to },
      cause: err,
    });
  }
  ctx.events.emit(EVENTS.CONNECTOR_RENAMED, { from, to, objects: result!.moved.objects });
  return result!;
}

function renameEngineRows(db: Database, from: string, to: string, config: SourceConnectorConfig | undefined): void {
  db.prepare('UPDATE cs_objects SET connector = ? WHERE connector = ?').run(to, from);
  db.prepare('UPDATE cs_members SET connector = ? WHERE connector = ?').run(to, from);
  db.prepare('UPDATE watermarks SET connector = ? WHERE connector = ?').run(to, from);
  db.prepare('UPDATE run_steps SET connector = ? WHERE connector = ?').run(to, from);
  db.prepare('UPDATE run_errors SET connector = ? WHERE connector = ?').run(to, from);
  const state = new EngineState(db);
  const lastFull = state.get(lastFullImportKey(from));
  if (lastFull !== undefined) state.set(lastFullImportKey(to), lastFull);
  state.delete(lastFullImportKey(from));
  // The source hash includes the name: carried over only when it says the source is unchanged,
  // else the next cycle reads the source in full (as after any change of the connector).
  const saved = state.get(sourceHashKey(from));
  state.delete(sourceHashKey(from));
  if (config && saved !== undefined && saved === contentHash({ ...config, name: from })) state.set(sourceHashKey(to), contentHash({ ...config, name: to }));
  else state.delete(sourceHashKey(to));
}

export interface ForgetPlan extends StoredConnector {
  /** Metaverse objects only this connector contributes: deleted from the cloud by the next cycle. */
  onlyHere: number;
  /** Metaverse objects other connectors contribute too: recomputed from them, kept. */
  shared: number;
}

/** What `forget` would do (nothing is changed). */
export function planForget(ctx: EngineContext, name: string): ForgetPlan {
  assertForgettable(ctx, name);
  const d = storedState(ctx, name);
  if (!holdsState(d)) {
    throw new IdsyncError('CONNECTOR_UNKNOWN', `the store holds nothing for connector "${name}": there is nothing to forget`, {
      hint: 'List what the store knows with `idsync connectors list`.',
      details: { connector: name },
    });
  }
  const onlyHere =
    ctx.db
      .prepare<[string], { n: number }>(
        `SELECT COUNT(*) AS n FROM cs_objects c WHERE c.connector = ? AND c.mv_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM cs_objects o WHERE o.mv_id = c.mv_id AND o.connector <> c.connector)`,
      )
      .get(name)?.n ?? 0;
  const linked = ctx.db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM cs_objects WHERE connector = ? AND mv_id IS NOT NULL').get(name)?.n ?? 0;
  return { ...d, onlyHere: Number(onlyHere), shared: Number(linked) - Number(onlyHere) };
}

function assertForgettable(ctx: EngineContext, name: string): void {
  if (NOT_SOURCE_CONNECTORS.has(name)) {
    throw new IdsyncError('CONFIG_INVALID', `"${name}" is not a source connector`, { hint: 'Forget source connectors only; `idsync connectors list` shows them.' });
  }
  if (ctx.loaded.config.connectors.some((c) => c.name === name)) {
    throw new IdsyncError('CONNECTOR_NAME_IN_USE', `connector "${name}" is still in ${ctx.loaded.file}; nothing was changed`, {
      hint: `Remove it from the file first (the next cycle would import it again), or, if you renamed it, \`idsync connectors rename ${name} NEW\`.`,
      details: { connector: name, file: ctx.loaded.file },
    });
  }
}

export interface ForgetResult {
  runId: number;
  objects: number;
  /** Metaverse objects now deleted (tombstones): the next cycle's export deletes them in the cloud. */
  deletes: number;
  /** Metaverse objects recomputed from their other contributors. */
  updates: number;
  passwordState: number;
  credential: boolean;
}

/**
 * Forgets a connector removed from the configuration on purpose, in one transaction, recorded as a
 * run (profile `forget`, so `idsync runs` shows it and it waits for no cycle: it takes the run lock).
 */
export function forgetConnector(ctx: EngineContext, name: string): ForgetResult {
  const { db, loaded } = ctx;
  planForget(ctx, name);
  const runs = new RunLog(db);
  const runId = runs.begin('forget', loaded.config.sync.runRetentionDays);
  const step = runs.step(runId, name, 'sync');
  step.profile = 'forget';
  let result: ForgetResult;
  try {
    result = db.transaction(() => {
      const sync = new Synchronizer(db, {
        kinds: new Map(loaded.config.connectors.map((c) => [c.name, c.type])),
        rules: loaded.rules,
        joinRules: (loaded.config.rules?.join.length ?? 0) > 0,
        scopeRules: (loaded.config.rules?.scope.length ?? 0) > 0,
      });
      const objects = sync.forgetConnector(name, step);
      db.prepare('DELETE FROM watermarks WHERE connector = ?').run(name);
      const state = new EngineState(db);
      state.delete(sourceHashKey(name));
      state.delete(lastFullImportKey(name));
      const pw = forgetPasswordConnector(db, name);
      const credential = ctx.credentials.forget(name);
      return { runId, objects, deletes: step.counts.deletes, updates: step.counts.updates, passwordState: pw.state, credential };
    })();
  } catch (err) {
    const e = isIdsyncError(err) ? err : new IdsyncError('STORE_FAILED', `forgetting connector "${name}" failed, and nothing was changed: ${(err as Error).message}`, { cause: err });
    step.error(e.code, e.message);
    step.end('failed');
    runs.finish(runId, 'failed', e);
    throw e;
  }
  step.end();
  runs.finish(runId, 'success');
  ctx.events.emit(EVENTS.CONNECTOR_FORGOTTEN, { connector: name, objects: result.objects, deletes: result.deletes, updates: result.updates });
  return result;
}
