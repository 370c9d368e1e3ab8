/**
 * The import step for one source connector: a delta import from the stored watermark when the
 * connector supports it and one exists, a full import otherwise (first run, `--full`, or a
 * watermark the directory no longer honours — event 6005). The watermark is read before a full
 * import and stored only after the changes it covers are staged.
 */
import type { SourceConnector, SourceObject } from '../connectors/types.js';
import { isIdsyncError } from '../core/errors.js';
import { EVENTS } from '../events/catalog.js';
import type { EventLog } from '../events/log.js';
import type { PasswordPipeline } from '../passwords/index.js';
import type { Database } from '../store/database.js';
import { ImportStager, type StagedProjection } from './connector-space.js';
import type { FullImportReader } from './reader/index.js';
import { dnUnicodeOf, preparePage, takePasswords, type PreparedPage } from './staging.js';
import type { StepHandle } from './runs.js';

/** How an import ran: `scheduled-full` is the periodic full import of a source whose delta cannot see deletions. */
export type ImportProfile = 'full' | 'delta' | 'scheduled-full';

export interface ImportOptions {
  full: boolean;
  events: EventLog;
  /** Where NT hashes read from the source go (never into the connector space); absent when password hash sync is off. */
  passwords?: () => PasswordPipeline;
  onProgress?: (done: number) => void;
  /**
   * Called after each page is staged, inside the page's transaction (so the page and what this
   * does with it commit together): the overlapped cycle syncs it at once. A failure it catches
   * itself (nested transactions are savepoints) leaves the staged page to commit.
   */
  onStaged?: () => void;
  /** The overlapped cycle's projection of new objects as they are staged (ImportStager's `project`). */
  project?: StagedProjection;
  /**
   * Awaited after each staged part of a full import's page, before the next is taken, with the
   * users in it: the overlapped cycle holds the import back while the cloud export lags too far
   * behind it (pipeline.ts).
   */
  room?: (users: number) => Promise<void>;
  /** The connector's full import read and prepared on a reader thread (reader/); absent: on the event loop. */
  reader?: FullImportReader;
}

/**
 * Iterates `pages` one page ahead: the next page is requested before the current one is handed
 * out, so the directory reads it while the engine stages this one. At most one page waits (the
 * back-pressure: the source is not read further until the engine takes the next page). Each page
 * comes with when it was asked for (`requestedAt`): the source read it no earlier than that.
 */
export async function* readAhead<T>(pages: AsyncIterable<T>): AsyncGenerator<{ page: T; requestedAt: Date }> {
  const it = pages[Symbol.asyncIterator]();
  let requestedAt = new Date();
  let next = it.next();
  let finished = false;
  try {
    for (;;) {
      const r = await next;
      if (r.done) {
        finished = true;
        return;
      }
      const asked = requestedAt;
      requestedAt = new Date();
      next = it.next();
      next.catch(() => undefined); // a failure is thrown by the await above, in the next round
      yield { page: r.value, requestedAt: asked };
    }
  } finally {
    if (!finished) await it.return?.().catch(() => undefined);
  }
}

/**
 * Rows a staging transaction writes at most, about: an object is one, a group one more per member.
 * A page of 1,000 groups of 100 members is 100,000 member rows, a transaction of a second that
 * holds the event loop; in parts of this weight, each staged and synced in its own transaction,
 * the loop is free every few tens of milliseconds. (A part is as safe as a page: a full import
 * commits nothing else until its end, and stageFresh already meets anchors of earlier pages.)
 */
export const STAGE_WEIGHT = 10_000;

/** A page cut into parts of at most STAGE_WEIGHT rows (a single heavier object is a part of its own). */
export function byWeight<T extends { members: unknown[] }>(objects: T[]): T[][] {
  const parts: T[][] = [];
  let part: T[] = [];
  let weight = 0;
  for (const p of objects) {
    const w = 1 + p.members.length;
    if (part.length > 0 && weight + w > STAGE_WEIGHT) {
      parts.push(part);
      part = [];
      weight = 0;
    }
    part.push(p);
    weight += w;
  }
  if (part.length > 0) parts.push(part);
  return parts;
}

/** A full import's pages prepared on the event loop (the reader thread does this for a directory). */
async function* preparedHere(pages: AsyncIterable<SourceObject[]>, unicode: ReturnType<typeof dnUnicodeOf>): AsyncGenerator<PreparedPage> {
  for await (const objects of pages) yield preparePage(objects, unicode);
}

export class Watermarks {
  constructor(private readonly db: Database) {}

  get(connector: string): string | undefined {
    return this.db.prepare<[string], { value: string }>('SELECT value FROM watermarks WHERE connector = ?').get(connector)?.value;
  }

  set(connector: string, value: string): void {
    if (this.get(connector) === value) return; // a cycle that changes nothing writes nothing
    this.db
      .prepare('INSERT INTO watermarks (connector, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (connector) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at')
      .run(connector, value, new Date().toISOString());
  }

  clear(connector?: string): void {
    if (connector) this.db.prepare('DELETE FROM watermarks WHERE connector = ?').run(connector);
    else this.db.prepare('DELETE FROM watermarks').run();
  }
}

/**
 * The engine_state keys kept per source connector: the hash of its configuration the watermark
 * belongs to, and when its last full import ran. `idsync connectors rename`/`forget` move or drop
 * them with the connector (connector-identity.ts).
 */
export const sourceHashKey = (connector: string): string => `source_hash:${connector}`;
export const lastFullImportKey = (connector: string): string => `last_full_import:${connector}`;

/** Small durable facts of the engine (hashes of the configuration it last ran with). */
export class EngineState {
  constructor(private readonly db: Database) {}

  get(key: string): string | undefined {
    return this.db.prepare<[string], { value: string }>('SELECT value FROM engine_state WHERE key = ?').get(key)?.value;
  }

  set(key: string, value: string): void {
    if (this.get(key) === value) return;
    this.db.prepare('INSERT INTO engine_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  delete(key: string): void {
    this.db.prepare('DELETE FROM engine_state WHERE key = ?').run(key);
  }
}

/** Event 6006 when the stager removed control characters from values (one event per import). */
export function reportCleanedValues(events: EventLog, connector: string, stager: ImportStager): void {
  const c = stager.cleaned;
  if (c.first === undefined) return;
  events.emit(EVENTS.CONTROL_CHARACTERS_STRIPPED, { connector, values: c.values, objects: c.objects, attribute: c.first.attribute, dn: c.first.dn });
}

export async function importConnector(db: Database, connector: SourceConnector, step: StepHandle, options: ImportOptions): Promise<ImportProfile> {
  const stager = new ImportStager(db, connector.name, connector.kind, options.project);
  try {
    return await importWith(db, connector, stager, step, options);
  } finally {
    reportCleanedValues(options.events, connector.name, stager);
  }
}

async function importWith(db: Database, connector: SourceConnector, stager: ImportStager, step: StepHandle, options: ImportOptions): Promise<ImportProfile> {
  const watermarks = new Watermarks(db);
  let done = 0;
  // A page's hashes are stamped with when the page was asked for (`readAt`), not when it is
  // handed over: a page can be read (and prefetched) before a password change whose notification
  // is accepted meanwhile, and that newer change must win (the outbox keeps the later stamp); a
  // page asked for after the notification holds that change or a newer one (a reset in the
  // directory) and wins. Not the import's start either: a long import would then drop every
  // reset made in the directory after a notification, until the next import.
  const queue = async (hashes: { anchor: string; nt: Buffer }[], readAt: Date) => {
    if (hashes.length > 0 && options.passwords) await options.passwords().observeNtHashes(connector.name, hashes, undefined, 'ldap', readAt);
  };

  const saved = watermarks.get(connector.name);
  const state = new EngineState(db);
  const lastFullKey = lastFullImportKey(connector.name);
  // A source whose delta cannot see deletions gets a full import on a schedule, which finds them.
  let scheduledFull = false;
  if (!options.full && saved !== undefined && connector.deltaImport && connector.deltaSeesDeletions === false) {
    const last = Date.parse(state.get(lastFullKey) ?? '');
    const every = connector.fullImportIntervalMs ?? 86_400_000;
    if (!Number.isFinite(last) || Date.now() - last >= every) {
      scheduledFull = true;
      options.events.emit(EVENTS.SCHEDULED_FULL_IMPORT, {
        connector: connector.name,
        reason: Number.isFinite(last) ? `the last one was at ${new Date(last).toISOString()}` : 'no full import recorded yet',
      });
    }
  }
  if (!options.full && !scheduledFull && saved !== undefined && connector.deltaImport) {
    try {
      const delta = connector.deltaImport(saved);
      for await (const { page: changes, requestedAt } of readAhead(delta.pages)) {
        const hashes = takePasswords(changes.flatMap((c) => (c.kind === 'upsert' ? [c.object] : [])));
        stager.stageDelta(changes, step.counts, options.onStaged);
        await queue(hashes, requestedAt);
        done += changes.length;
        options.onProgress?.(done);
      }
      watermarks.set(connector.name, delta.watermark());
      return 'delta';
    } catch (err) {
      if (!isIdsyncError(err, 'WATERMARK_INVALID')) throw err;
      options.events.emit(EVENTS.IMPORT_FELL_BACK_TO_FULL, { connector: connector.name, reason: err.message });
    }
  }

  // Full import. NT hashes leave the objects before they are staged (staging.ts takePasswords
  // removes them in place), so the connector space never holds one.
  const watermark = connector.currentWatermark ? await connector.currentWatermark() : undefined;
  const pages = options.reader?.pages() ?? preparedHere(connector.fullImport(), dnUnicodeOf(connector.kind));
  for await (const { page, requestedAt } of readAhead(pages)) {
    const parts = byWeight(page.objects);
    for (const [i, part] of parts.entries()) {
      // Between the parts of a heavy page, the event loop's other work (the overlapped cycle's
      // export, the service's health checks) gets its turn.
      if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      stager.stagePrepared(part, step.counts, options.onStaged);
      done += part.length;
      options.onProgress?.(done);
      if (options.room) await options.room(part.reduce((n, p) => n + (p.o.objectType === 'user' ? 1 : 0), 0));
    }
    await queue(page.hashes, requestedAt);
  }
  stager.markUnseenDeleted(step.counts);
  if (watermark !== undefined) watermarks.set(connector.name, watermark);
  if (connector.deltaSeesDeletions === false) state.set(lastFullKey, new Date().toISOString());
  return scheduledFull ? 'scheduled-full' : 'full';
}
