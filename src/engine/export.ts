/**
 * Export: brings the cloud directory in line with the metaverse. For each object with a pending
 * export, the desired SCIM resource is computed and compared (by content hash) with what was last
 * exported, so an unchanged object costs no request: a cycle with no source change writes nothing.
 * Order: deletions (so a re-created object's name is free), users, then groups (members need
 * cloud ids; nested groups loop until settled), then one more try for uniqueness conflicts. A
 * failed object stays pending and is retried next cycle. Crash-safe: a create whose response was lost is found again by externalId (409).
 */
import type { ObjectType, TargetConnector, TargetOutcome, TargetWrite } from '../connectors/types.js';
import { IdsyncError, toIdsyncError } from '../core/errors.js';
import type { Database } from '../store/database.js';
import type { Statement } from 'better-sqlite3';
import { DELETION_THRESHOLD } from '../config/schema.js';
import type { CompiledRules } from '../rules/index.js';
import { outboundFlow, type MvAttrs, type ScimMember } from './flows.js';
import type { StepHandle } from './runs.js';
import { hashOfStable, stableStringify } from './stable-hash.js';

interface PendingRow {
  id: number;
  object_type: ObjectType;
  attrs: string;
  deleted: number;
  cloud_id: string | null;
  exported_hash: string | null;
  /** `active` of what was last exported (1, 0, or null when unknown). */
  was_active?: number | null;
}

export interface ExportOptions {
  /** A count, a percentage of the exported objects ("10%"), or the smaller of both ("500 or 10%"). */
  deletionThreshold: number | string;
  allowDeletes: boolean;
  concurrency: number;
  onProgress?: (done: number) => void;
  /** What happens in the cloud to a user removed from the source or the scope. */
  deletionAction?: 'delete' | 'disable';
  /** Export only this metaverse object (`idsync sync --object`). */
  only?: number;
  /** Outbound flows and the cloud soft-match setting (absent: the built-in defaults). */
  rules?: CompiledRules;
  /** Operations per SCIM Bulk request; 1 = one request per object. */
  bulkSize: number;
  /** Preview: compute what would be exported, write nothing (neither to the cloud nor locally). */
  dryRun?: boolean;
  /**
   * Called with the externalIds (anchors) of users that got a cloud object they did not have —
   * created, re-created after a deletion in the cloud, adopted, joined to another object — or that
   * were re-enabled: password hash sync sends their current hash again.
   */
  onNewCloudObjects?: (anchors: string[]) => void;
}

/** One planned cloud write, as `idsync sync --preview` shows it. */
export interface PlannedExport {
  op: 'add' | 'update' | 'delete' | 'disable';
  objectType: ObjectType;
  /** The source DN (or the metaverse id when unknown). */
  object: string;
  cloudId: string | null;
  /** Attribute-level differences for updates; every attribute for adds. */
  changes: { attribute: string; before: unknown; after: unknown }[];
}

interface PreparedWrite {
  row: PendingRow;
  label: string;
  /**
   * The resource as stable JSON: hashed once, sent and stored as the exported document as it is.
   * The resource object itself is not kept: writes wait for the cloud in thousands, and what
   * outlives a young-generation collection is what the collector copies.
   */
  doc: string;
  hash: string;
  /** The resource's externalId and whether it is active (isNewCloudObject). */
  externalId: string | undefined;
  active: boolean;
}

/** Pending objects read (and prepared) per statement. */
export const EXPORT_CHUNK = 2000;
const MAX_GROUP_ROUNDS = 3;

/**
 * Metaverse attributes the overlapped cycle's sync projected, handed to the early export as
 * objects (pipeline.ts), so an object is not parsed again from the text just written. Taken once;
 * used only while the stored text is still the one they were made into. Bounded: when the export
 * lags behind the import, the objects beyond the bound are parsed from the store as before.
 */
export class ParsedAttrs {
  private readonly held = new Map<number, { text: string; attrs: MvAttrs }>();
  constructor(private readonly max = 10_000) {}

  put(mvId: number, text: string, attrs: MvAttrs): void {
    if (this.held.size < this.max) this.held.set(mvId, { text, attrs });
  }

  take(mvId: number, text: string): MvAttrs | undefined {
    const e = this.held.get(mvId);
    if (e === undefined) return undefined;
    this.held.delete(mvId);
    return e.text === text ? e.attrs : undefined;
  }
}

/** Objects per multi-row statement of flush(): 7 parameters each, far below SQLite's limit. */
const SETTLE_ROWS = 100;

/** The export state of `n` exported objects, one statement (common SQLite/PostgreSQL SQL). */
function upsertExportState(n: number): string {
  return `INSERT INTO export_objects (mv_id, object_type, cloud_id, exported_hash, exported_doc, last_error, updated_at)
    VALUES ${Array.from({ length: n }, () => '(?, ?, ?, ?, ?, ?, ?)').join(', ')}
    ON CONFLICT (mv_id) DO UPDATE SET cloud_id = excluded.cloud_id, exported_hash = excluded.exported_hash,
      exported_doc = COALESCE(excluded.exported_doc, export_objects.exported_doc),
      last_error = excluded.last_error, updated_at = excluded.updated_at`;
}

/**
 * Clears the pending flag of `n` exported objects, each only in the version that was exported
 * (settle() says why). The id is cast: PostgreSQL reads an untyped VALUES parameter as text.
 */
function clearExported(n: number): string {
  return `UPDATE mv_objects SET pending_export = 0 WHERE deleted = 0
    AND (id, attrs) IN (VALUES ${Array.from({ length: n }, () => '(CAST(? AS BIGINT), ?)').join(', ')})`;
}


export class Exporter {
  private done = 0;
  private deferred = 0;
  /** Whether to use SCIM Bulk (switched off when the cloud has no Bulk endpoint). */
  private bulk: boolean;
  private readonly written = new Set<number>();
  /** Filled in dry-run mode. */
  readonly plan: PlannedExport[] = [];
  private readonly planned = new Set<number>();
  /** Objects whose write failed in this export: not tried again by a later pass of the same export. */
  private readonly failed = new Set<number>();
  /** Objects refused with a uniqueness conflict, tried once more at the end (retryConflicts). */
  private readonly conflicts = new Set<number>();
  private retrying = false;
  /** What the overlapped cycle's sync hands over (ParsedAttrs). */
  readonly parsed = new ParsedAttrs();
  /**
   * While a chunk of groups is prepared: their members (cloud id, type) read in one statement
   * (upserts()); dropped when a settle in the chunk changes what it answers (see settle()).
   */
  private chunkMembers: Map<number, { cloud_id: string | null; object_type: ObjectType | null }[]> | undefined;
  /** Bulk answers not recorded yet (flush()). */
  private answered: { w: PreparedWrite; cloudId: string }[] = [];

  constructor(
    private readonly db: Database,
    private readonly target: TargetConnector,
    private readonly options: ExportOptions,
  ) {
    this.bulk = options.bulkSize > 1;
  }

  /** Prepared once per export: preparing a statement per object costs more than running it. */
  private readonly statements = new Map<string, Statement>();
  private sql(text: string): Statement {
    let st = this.statements.get(text);
    if (!st) this.statements.set(text, (st = this.db.prepare(text)));
    return st;
  }

  /** Number of cloud deletions the pending export would make. */
  pendingDeletes(): number {
    return (
      this.db
        .prepare<[], { n: number }>(
          `SELECT COUNT(*) AS n FROM mv_objects m JOIN export_objects e ON e.mv_id = m.id
           WHERE m.deleted = 1 AND m.pending_export = 1 AND e.cloud_id IS NOT NULL`,
        )
        .get()?.n ?? 0
    );
  }

  /** Whether any object has a cloud object already (false before the first export). */
  anythingExported(): boolean {
    return this.db.prepare('SELECT 1 FROM export_objects WHERE cloud_id IS NOT NULL LIMIT 1').get() !== undefined;
  }

  /** Metaverse objects still waiting for an export (after run(): the ones that failed). */
  unexported(): number {
    return this.db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM mv_objects WHERE pending_export = 1').get()?.n ?? 0;
  }

  /** The threshold as a count: a percentage applies to the objects exported so far. */
  threshold(): number {
    const t = this.options.deletionThreshold;
    if (typeof t === 'number') return t;
    const exported = this.db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM export_objects WHERE cloud_id IS NOT NULL').get()?.n ?? 0;
    return deletionThresholdCount(t, exported);
  }

  async run(step: StepHandle): Promise<void> {
    const deletes = this.pendingDeletes();
    const threshold = this.threshold();
    if (deletes > threshold && !this.options.allowDeletes && !this.options.dryRun) {
      throw new IdsyncError(
        'DELETION_THRESHOLD_EXCEEDED',
        `the export would delete ${deletes} objects from the cloud directory, more than the deletion threshold (${this.options.deletionThreshold}${typeof this.options.deletionThreshold === 'string' ? ` = ${threshold} objects here` : ''}); nothing was exported`,
        {
          hint: 'Review them with `idsync sync --preview`. If the deletions are intended, run `idsync sync --allow-deletes`; otherwise fix the source or the scope and run again.',
          details: { deletes, threshold },
        },
      );
    }
    // Deletions first: a user deleted and re-created with the same userName in one cycle frees
    // the name before the new one is created.
    await this.deletions(step);
    await this.upserts('user', step);
    // Nested groups: a group waits until its member groups have cloud ids, so it is written once
    // with its whole membership (one level per pass). What can never complete (a member the cloud
    // refused, a cycle of groups) is written with the members that exist once the passes stall.
    for (let round = 0; round < MAX_GROUP_ROUNDS; round++) {
      for (;;) {
        this.deferred = 0;
        const writesBefore = step.counts.adds + step.counts.updates;
        await this.upserts('group', step, true);
        if (this.deferred === 0 || step.counts.adds + step.counts.updates === writesBefore) break;
      }
      if (this.deferred === 0) break;
      await this.upserts('group', step, false);
    }
    await this.retryConflicts(step);
  }

  /**
   * Objects whose write the cloud refused with a uniqueness conflict are tried once more after
   * every other write of this export (a rename elsewhere may have freed the name: events 6304/6003
   * promise a retry). What still conflicts is an error, stays pending, and is retried next cycle.
   */
  private async retryConflicts(step: StepHandle): Promise<void> {
    if (this.conflicts.size === 0) return;
    const ids = [...this.conflicts];
    this.conflicts.clear();
    this.retrying = true;
    for (const type of ['user', 'group'] as const) {
      const rows = this.sql(
        `SELECT m.id, m.object_type, m.attrs, m.deleted, e.cloud_id, e.exported_hash
         FROM mv_objects m LEFT JOIN export_objects e ON e.mv_id = m.id
         WHERE m.id IN (SELECT value FROM json_each(?)) AND m.object_type = ? AND m.deleted = 0 AND m.pending_export = 1 ORDER BY m.id`,
      ).all(JSON.stringify(ids), type) as PendingRow[];
      const writes: PreparedWrite[] = [];
      for (const row of rows) {
        const w = this.prepare(row, step, false);
        if (w) writes.push(w);
      }
      await this.parallel(writes, (w) => this.writeOne(w, step));
    }
  }

  /**
   * The overlapped cycle's early pass: the users pending now (adds and updates only; no deletion,
   * no group), while import and sync go on. run() does the rest once they finished.
   */
  async exportPendingUsers(step: StepHandle): Promise<void> {
    await this.upserts('user', step);
  }

  private pendingUpserts(type: ObjectType, afterId: number): PendingRow[] {
    return this.db
      .prepare<[string, number, number | null, number | null, number], PendingRow>(
        `SELECT m.id, m.object_type, m.attrs, m.deleted, e.cloud_id, e.exported_hash, CAST(json_extract(e.exported_doc, '$.active') AS INTEGER) AS was_active
         FROM mv_objects m LEFT JOIN export_objects e ON e.mv_id = m.id
         WHERE m.pending_export = 1 AND m.deleted = 0 AND m.object_type = ? AND m.id > ? AND (? IS NULL OR m.id = ?)
         ORDER BY m.id LIMIT ?`,
      )
      .all(type, afterId, this.options.only ?? null, this.options.only ?? null, EXPORT_CHUNK);
  }

  private async upserts(type: ObjectType, step: StepHandle, deferIncomplete = false): Promise<void> {
    let afterId = 0;
    /** The next chunk of pending objects, prepared: undefined when none is left. */
    const nextChunk = (): PreparedWrite[] | undefined => {
      const rows = this.pendingUpserts(type, afterId);
      if (rows.length === 0) return undefined;
      afterId = rows[rows.length - 1]!.id;
      const writes: PreparedWrite[] = [];
      if (type === 'group') this.chunkMembers = this.membersOf(rows.map((r) => r.id));
      try {
        for (const row of rows) {
          const w = this.prepare(row, step, deferIncomplete);
          if (w) writes.push(w);
        }
      } finally {
        this.chunkMembers = undefined;
      }
      return writes;
    };
    // Users over Bulk: one stream of batches across chunks. Groups go a chunk at a time: a group
    // needs its members' cloud ids, which the chunk before records when it ends; so do the users
    // left when the cloud turns out to have no Bulk endpoint (one write at a time per worker).
    if (type === 'user' && this.bulk) {
      await this.writeStream(nextChunk, step);
      if (this.bulk) return;
    }
    for (let writes = nextChunk(); writes; writes = nextChunk()) await this.write(writes, step);
  }

  /** The members of many groups, one statement (on PostgreSQL one round trip per chunk, not per group). */
  private membersOf(groupIds: number[]): Map<number, { cloud_id: string | null; object_type: ObjectType | null }[]> {
    const out = new Map<number, { cloud_id: string | null; object_type: ObjectType | null }[]>(groupIds.map((id) => [id, []]));
    const rows = this.sql(
      `SELECT mm.group_id, e.cloud_id, m.object_type FROM mv_members mm
       JOIN mv_objects m ON m.id = mm.member_id
       LEFT JOIN export_objects e ON e.mv_id = mm.member_id
       WHERE mm.group_id IN (SELECT value FROM json_each(?)) AND m.deleted = 0`,
    ).all(JSON.stringify(groupIds)) as { group_id: number; cloud_id: string | null; object_type: ObjectType | null }[];
    for (const r of rows) out.get(Number(r.group_id))?.push({ cloud_id: r.cloud_id, object_type: r.object_type });
    return out;
  }

  private members(groupId: number): { members: ScimMember[]; complete: boolean } {
    const rows =
      this.chunkMembers?.get(groupId) ??
      (this.sql(
        `SELECT e.cloud_id, m.object_type FROM mv_members mm
         JOIN mv_objects m ON m.id = mm.member_id
         LEFT JOIN export_objects e ON e.mv_id = mm.member_id
         WHERE mm.group_id = ? AND m.deleted = 0`,
      ).all(groupId) as { cloud_id: string | null; object_type: ObjectType | null }[]);
    const members: ScimMember[] = [];
    let complete = true;
    for (const r of rows) {
      const type = r.object_type === 'group' ? 'Group' : 'User';
      if (r.cloud_id) members.push({ type, value: r.cloud_id }); // keys sorted: see flows.ts
      else if (this.options.dryRun) members.push({ type, value: '(new)' }); // created earlier in the same export
      else complete = false;
    }
    return { members, complete };
  }

  /** Decides what one pending object needs; returns the write to make, or undefined when none. */
  private prepare(row: PendingRow, step: StepHandle, deferIncomplete: boolean): PreparedWrite | undefined {
    if (this.failed.has(row.id) || (this.conflicts.has(row.id) && !this.retrying)) return undefined;
    const attrs = this.parsed.take(row.id, row.attrs) ?? (JSON.parse(row.attrs) as MvAttrs);
    const label = (attrs.distinguishedName as string | null) ?? `metaverse object ${row.id}`;
    const { members, complete } = row.object_type === 'group' ? this.members(row.id) : { members: [], complete: true };
    if (!complete && deferIncomplete) {
      this.deferred++;
      return undefined;
    }
    const flow = outboundFlow(row.object_type, attrs, members);
    if (flow.ok && this.options.rules) {
      try {
        flow.resource = this.options.rules.outbound(row.object_type, attrs, flow.resource);
      } catch (err) {
        const reason = (err as Error).message;
        this.settle(row, { cloudId: row.cloud_id, hash: row.exported_hash, error: reason });
        step.error('OBJECT_INVALID', reason, label);
        return undefined;
      }
    }
    if (!flow.ok) {
      // What the cloud holds of the object stays known (its id above all): a deletion later must
      // still find it there.
      this.settle(row, { cloudId: row.cloud_id, hash: row.exported_hash, error: flow.reason });
      step.error('OBJECT_INVALID', flow.reason, label);
      return undefined;
    }
    const doc = stableStringify(flow.resource);
    const hash = hashOfStable(doc);
    if (row.cloud_id && row.exported_hash === hash) {
      if (!this.options.dryRun) this.settle(row, { cloudId: row.cloud_id, hash });
      step.counts.unchanged++;
      return undefined;
    }
    if (this.options.dryRun) {
      if (this.planned.has(row.id)) return undefined; // group passes revisit pending groups
      this.planned.add(row.id);
      const before = row.cloud_id ? this.exportedDoc(row.id) : {};
      this.plan.push({ op: row.cloud_id ? 'update' : 'add', objectType: row.object_type, object: label, cloudId: row.cloud_id, changes: diffResources(before, flow.resource) });
      if (row.cloud_id) step.counts.updates++;
      else step.counts.adds++;
      return undefined;
    }
    const { externalId, active } = flow.resource;
    return { row, label, doc, hash, externalId: typeof externalId === 'string' ? externalId : undefined, active: active !== false };
  }

  /** Writes prepared objects: SCIM Bulk when the cloud offers it, one request each otherwise. */
  private async write(writes: PreparedWrite[], step: StepHandle): Promise<void> {
    if (writes.length === 0) return;
    if (this.bulk) {
      const batches: PreparedWrite[][] = [];
      for (let i = 0; i < writes.length; i += this.options.bulkSize) batches.push(writes.slice(i, i + this.options.bulkSize));
      // Also when a batch failed: what the others got answered is recorded.
      await this.recordingAnswers(() => this.parallel(batches, (batch) => this.writeBulk(batch, step)));
      if (this.bulk) return;
      // The cloud has no Bulk endpoint after all: write what is left one by one.
      writes = writes.filter((w) => !this.written.has(w.row.id));
    }
    await this.parallel(writes, (w) => this.writeOne(w, step));
  }

  /**
   * Bulk batches from chunk after chunk, `cloud.concurrency` of them in flight all along: the next
   * chunk is read and prepared while the last batches of this one are out, so the cloud never
   * waits for a chunk's slowest batch, its recording and the next read (the chunk barrier held
   * the 100k cycle's export at half the cloud's pace). What the cloud answered is recorded
   * (flush()) before each read of the next chunk and at the end. A chunk is read past the last
   * one's rows (its id cursor), so nothing in flight is selected again.
   */
  private async writeStream(nextChunk: () => PreparedWrite[] | undefined, step: StepHandle): Promise<void> {
    const queue: PreparedWrite[][] = [];
    let exhausted = false;
    const refill = (): void => {
      // Reads ahead while fewer batches than workers are queued, at most one chunk with writes per
      // call: what waits prepared stays about a chunk whatever cloud.bulkSize and concurrency are.
      while (!exhausted && queue.length < this.options.concurrency) {
        this.flush();
        const writes = nextChunk();
        if (writes === undefined) exhausted = true;
        else {
          for (let i = 0; i < writes.length; i += this.options.bulkSize) queue.push(writes.slice(i, i + this.options.bulkSize));
          if (writes.length > 0) return;
        }
      }
    };
    await this.recordingAnswers(async () => {
      refill();
      // Taken until the cloud turns out to have no Bulk endpoint (writeBulk switches it off).
      await this.parallelPull(() => {
        if (!this.bulk) return undefined;
        refill();
        return queue.shift();
      }, (batch) => this.writeBulk(batch, step));
    });
    // No Bulk endpoint after all: what was queued goes one by one (upserts() writes the chunks left).
    if (!this.bulk) await this.write(queue.splice(0).flat(), step);
  }

  /**
   * Runs `fn`, then records what the cloud answered meanwhile (flush()) — also when `fn` failed:
   * its failure is the one reported (an answer a failing store could not record is sent again by
   * the next cycle, as after a crash).
   */
  private async recordingAnswers(fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      try {
        this.flush();
      } catch {
        // the first failure is the one to report
      }
      throw err;
    }
    this.flush();
  }

  private async writeBulk(batch: PreparedWrite[], step: StepHandle): Promise<void> {
    if (!this.bulk) return this.parallel(batch, (w) => this.writeOne(w, step));
    const outcomes = await this.target.writeBatch(batch.map(targetWrite));
    if (!outcomes) {
      this.bulk = false; // the target cannot batch
      return this.parallel(batch, (w) => this.writeOne(w, step));
    }
    const retry: PreparedWrite[] = [];
    const done: { w: PreparedWrite; cloudId: string }[] = [];
    let serverError: IdsyncError | undefined;
    outcomes.forEach((o, i) => {
      const w = batch[i]!;
      if (o.kind === 'ok') done.push({ w, cloudId: o.targetId });
      else if (o.kind === 'conflict' || o.kind === 'not-found') retry.push(w); // adopt by externalId / create again: the single-write path knows how
      else if (o.kind === 'server-error') serverError ??= new IdsyncError('CLOUD_SERVER_ERROR', `the cloud directory failed on ${w.label} (HTTP ${o.status}): ${o.detail}`);
      else {
        const message = `the cloud directory rejected the ${w.row.cloud_id ? 'update' : 'create'} of ${w.label} (HTTP ${o.status}): ${o.detail}`;
        this.settle(w.row, { cloudId: w.row.cloud_id, hash: w.row.exported_hash, error: message });
        step.error('CLOUD_REJECTED', message, w.label);
      }
    });
    // Recorded by flush() at the end of the chunk, with the other batches answered meanwhile; the
    // batch's other answers too when one of its operations failed on the server (the export stops).
    for (const { w, cloudId } of done) this.succeeded(w, cloudId, step, true);
    if (serverError) throw serverError;
    // A retried write is counted by writeOne.
    this.options.onProgress?.((this.done += batch.length - retry.length));
    for (const w of retry) await this.writeOne(w, step);
  }

  /**
   * A write the cloud answered ok. `later`: recorded by flush() (the Bulk path), so a chunk's
   * batches share one transaction and multi-row statements; otherwise recorded now.
   */
  private succeeded(w: PreparedWrite, cloudId: string, step: StepHandle, later = false): void {
    this.written.add(w.row.id);
    if (later) this.answered.push({ w, cloudId });
    else this.settle(w.row, { cloudId, hash: w.hash, doc: w.doc });
    if (w.row.cloud_id) step.counts.updates++;
    else step.counts.adds++;
  }

  /**
   * Records the Bulk answers of the chunk in one transaction: the export state in multi-row
   * statements of up to SETTLE_ROWS objects, the pending flags of what was exported, the groups
   * that can now list new members. Until then an answered object is still pending in the store:
   * after a crash the next cycle sends it again (a create comes back 409 and is adopted by
   * externalId, an update is the same PUT), as with a crash between an answer and its commit.
   * The next chunk's query runs only after this, so nothing answered is selected (and sent) twice.
   */
  private flush(): void {
    const answered = this.answered;
    if (answered.length === 0) return;
    this.answered = [];
    const fresh: string[] = [];
    const now = new Date().toISOString();
    this.db.transaction(() => {
      const created: number[] = [];
      for (let from = 0; from < answered.length; from += SETTLE_ROWS) {
        const part = answered.slice(from, from + SETTLE_ROWS);
        const state: unknown[] = [];
        const exported: unknown[] = [];
        for (const { w, cloudId } of part) {
          state.push(w.row.id, w.row.object_type, cloudId, w.hash, w.doc, null, now);
          exported.push(w.row.id, w.row.attrs);
          if (!w.row.cloud_id) created.push(w.row.id);
          if (isNewCloudObject(w, cloudId)) fresh.push(w.externalId!);
        }
        this.sql(upsertExportState(part.length)).run(...state);
        this.sql(clearExported(part.length)).run(...exported);
      }
      this.flagContainingGroups(created);
    })();
    if (fresh.length > 0) this.options.onNewCloudObjects?.(fresh);
  }

  private async writeOne(w: PreparedWrite, step: StepHandle): Promise<void> {
    const { row, label } = w;
    try {
      let cloudId = row.cloud_id;
      let created = false;
      if (cloudId) {
        const o = await this.target.write({ ...targetWrite(w), targetId: cloudId });
        if (o.kind === 'not-found') cloudId = null; // deleted in the cloud meanwhile: create it again
        else expectOk(o, 'update', label);
      }
      if (!cloudId) {
        const o = await this.target.write({ ...targetWrite(w), targetId: null });
        if (o.kind === 'conflict') {
          cloudId = await this.adopt(w);
        } else {
          cloudId = expectOk(o, 'create', label);
          created = true;
        }
      }
      this.succeeded(w, cloudId, step);
      if (created || !row.cloud_id) this.flagContainingGroups([row.id]);
      if (isNewCloudObject(w, cloudId)) this.options.onNewCloudObjects?.([w.externalId!]);
    } catch (err) {
      const e = toIdsyncError(err, 'EXPORT_FAILED');
      if (e.code === 'CLOUD_CONFLICT' && !this.retrying) {
        this.conflicts.add(row.id); // another write of this export may free the name
        return;
      }
      if (e.code === 'CLOUD_REJECTED' || e.code === 'CLOUD_CONFLICT') {
        // The cloud refuses this content: recorded, and the object stays pending (next cycle).
        this.settle(row, { cloudId: row.cloud_id, hash: row.exported_hash, error: e.message });
        step.error(e.code, e.message, label);
        return;
      }
      throw e; // unreachable, auth, server error: stop the export, keep everything pending
    } finally {
      this.options.onProgress?.(++this.done);
    }
  }

  /**
   * A create answered 409: either our own earlier create whose response was lost (same externalId:
   * adopt it), or a different cloud object holds the userName (a conflict to report).
   */
  private async adopt(w: PreparedWrite): Promise<string> {
    const { row, label } = w;
    const resource = JSON.parse(w.doc) as Record<string, unknown>; // the rare path: parsed again
    const type = row.object_type;
    let id = (await this.target.find(type, 'externalId', String(resource.externalId ?? '')))?.targetId;
    // The incumbent's soft match: a cloud-only user (no externalId) with the same userName or
    // mail becomes this synced user, when the rules allow it.
    const soft = this.options.rules?.cloudSoftMatch;
    if (!id && type === 'user' && soft?.enabled) {
      for (const attribute of soft.attributes) {
        const value = attribute === 'userName' ? resource.userName : (resource.emails as { value?: string }[] | undefined)?.[0]?.value;
        if (typeof value !== 'string') continue;
        const hit = await this.target.find(type, attribute === 'userName' ? 'userName' : 'mail', value);
        if (hit && !hit.externalId) {
          id = hit.targetId;
          break;
        }
      }
    }
    if (!id) {
      throw new IdsyncError('CLOUD_CONFLICT', `the cloud directory already has another ${type} with the same unique name as ${label} (userName or externalId in use)`, {
        hint: 'Rename or remove the conflicting cloud object, or fix the duplicate in the source directory.',
      });
    }
    return expectOk(await this.target.write({ ...targetWrite(w), targetId: id }), 'update', label);
  }

  private exportedDoc(mvId: number): Record<string, unknown> {
    const r = this.sql('SELECT exported_doc FROM export_objects WHERE mv_id = ?').get(mvId) as { exported_doc: string | null } | undefined;
    return r?.exported_doc ? (JSON.parse(r.exported_doc) as Record<string, unknown>) : {};
  }

  /**
   * Records the outcome of one object. A failed object keeps its pending-export flag: it is not
   * done, the run says so (an error), and the next cycle tries it again.
   */
  private settle(row: PendingRow, r: { cloudId?: string | null; hash?: string | null; error?: string; doc?: string }): void {
    if (r.error !== undefined) this.failed.add(row.id);
    // The object's cloud id may change here (an error records none): a group of the same chunk that
    // lists it reads its members afresh.
    if (r.cloudId !== row.cloud_id) this.chunkMembers = undefined;
    // Inside a batch's transaction (writeBulk) the two statements join it; a savepoint per object
    // was the export's top cost in the profile.
    const write = () => {
      this
        .sql(
          `INSERT INTO export_objects (mv_id, object_type, cloud_id, exported_hash, exported_doc, last_error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (mv_id) DO UPDATE SET cloud_id = excluded.cloud_id, exported_hash = excluded.exported_hash,
             exported_doc = COALESCE(excluded.exported_doc, export_objects.exported_doc),
             last_error = excluded.last_error, updated_at = excluded.updated_at`,
        )
        .run(row.id, row.object_type, r.cloudId ?? null, r.hash ?? null, r.doc ?? null, r.error ?? null, new Date().toISOString());
      // Only the version that was exported: the overlapped cycle's sync may have changed (or
      // deleted) the object while its write was in flight, and that change must still go out.
      if (r.error === undefined) this.sql('UPDATE mv_objects SET pending_export = 0 WHERE id = ? AND attrs = ? AND deleted = 0').run(row.id, row.attrs);
    };
    if (this.db.inTransaction) write();
    else this.db.transaction(write)();
  }

  /** Members that just got cloud ids can now be listed in their groups: one statement per batch. */
  private flagContainingGroups(memberIds: number[]): void {
    if (memberIds.length === 0) return;
    this.sql(
      'UPDATE mv_objects SET pending_export = 1 WHERE deleted = 0 AND id IN (SELECT group_id FROM mv_members WHERE member_id IN (SELECT value FROM json_each(?)))',
    ).run(JSON.stringify(memberIds));
  }

  private async deletions(step: StepHandle): Promise<void> {
    // Groups first: deleting a group never needs its members, and users go last.
    for (const type of ['group', 'user'] as const) {
      for (;;) {
        const rows = this.db
          .prepare<[string, number | null, number | null, number], PendingRow>(
            `SELECT m.id, m.object_type, m.attrs, m.deleted, e.cloud_id, e.exported_hash
             FROM mv_objects m LEFT JOIN export_objects e ON e.mv_id = m.id
             WHERE m.pending_export = 1 AND m.deleted = 1 AND m.object_type = ? AND (? IS NULL OR m.id = ?) LIMIT ?`,
          )
          .all(type, this.options.only ?? null, this.options.only ?? null, EXPORT_CHUNK);
        if (rows.length === 0) break;
        // Users may be disabled instead of deleted (sync.deletionAction); groups are always deleted.
        const disable = type === 'user' && this.options.deletionAction === 'disable';
        if (this.options.dryRun) {
          for (const row of rows.filter((r) => r.cloud_id)) {
            const attrs = JSON.parse(row.attrs) as MvAttrs;
            const object = (attrs.distinguishedName as string | null) ?? `metaverse object ${row.id}`;
            this.plan.push({ op: disable ? 'disable' : 'delete', objectType: type, object, cloudId: row.cloud_id, changes: disable ? [{ attribute: 'active', before: true, after: false }] : [] });
            step.counts.deletes++;
          }
          break;
        }
        await this.parallel(rows, async (row) => {
          if (row.cloud_id) {
            expectOk(await this.target.remove(type, row.cloud_id, disable ? 'disable' : 'delete'), disable ? 'disabling' : 'deletion', `${type} ${row.cloud_id}`);
            step.counts.deletes++;
          }
          // A disabled cloud user keeps its externalId: if the source object comes back, the create
          // answers 409 and adopt() takes the cloud user over again (and re-enables it).
          this.db.transaction(() => {
            this.sql('DELETE FROM export_objects WHERE mv_id = ?').run(row.id);
            this.sql('DELETE FROM mv_members WHERE group_id = ? OR member_id = ?').run(row.id, row.id);
            this.sql('DELETE FROM mv_objects WHERE id = ?').run(row.id);
          })();
          this.options.onProgress?.(++this.done);
        });
      }
    }
  }

  /** Runs fn over items with bounded concurrency; the first thrown error stops new work and rethrows. */
  private async parallel<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
    let next = 0;
    await this.parallelPull(() => (next < items.length ? items[next++] : undefined), fn, Math.min(this.options.concurrency, items.length));
  }

  /** `fn` over what `take` hands out (until undefined), `workers` at a time; the first failure stops the taking and is thrown. */
  private async parallelPull<T>(take: () => T | undefined, fn: (item: T) => Promise<void>, workers = this.options.concurrency): Promise<void> {
    let failure: unknown;
    const worker = async () => {
      while (failure === undefined) {
        let item: T | undefined;
        try {
          item = take();
        } catch (err) {
          failure ??= err;
          return;
        }
        if (item === undefined) return;
        try {
          await fn(item);
        } catch (err) {
          failure ??= err;
        }
      }
    };
    await Promise.all(Array.from({ length: workers }, worker));
    if (failure !== undefined) throw failure;
  }
}

/**
 * `sync.deletionThreshold` as a number of objects, given how many objects are exported:
 * "10%" → 10 % of them; "500 or 10%" → the smaller of 500 and 10 % — at least 1 there, so removing
 * one person from a small directory needs no --allow-deletes, while emptying it does.
 */
export function deletionThresholdCount(t: number | string, exported: number): number {
  if (typeof t === 'number') return t;
  const m = DELETION_THRESHOLD.exec(t.trim());
  if (!m) return 0; // the schema refuses anything else; stop rather than guess
  const percent = Math.floor((Number(m[2]) / 100) * exported);
  return m[1] === undefined ? percent : Math.min(Number(m[1]), Math.max(1, percent));
}

/**
 * Whether a written user now has a cloud object it did not have before (password state follows the
 * cloud object, not the source object): a new or different cloud id, or active false → true.
 */
function isNewCloudObject(w: PreparedWrite, cloudId: string): boolean {
  if (w.row.object_type !== 'user' || w.externalId === undefined) return false;
  return w.row.cloud_id !== cloudId || (w.row.was_active === 0 && w.active);
}

/** Attribute-level differences between two SCIM resources (top-level and extension attributes; key order does not count). */
export function diffResources(before: Record<string, unknown>, after: Record<string, unknown>): { attribute: string; before: unknown; after: unknown }[] {
  const flat = (o: Record<string, unknown>, prefix = ''): Map<string, unknown> => {
    const out = new Map<string, unknown>();
    for (const [k, v] of Object.entries(o)) {
      if (k === 'schemas') continue;
      const key = prefix ? `${prefix}${k.startsWith('urn:') ? '' : '.'}${k}` : k;
      if (v && typeof v === 'object' && !Array.isArray(v)) for (const [k2, v2] of flat(v as Record<string, unknown>, key)) out.set(k2, v2);
      else out.set(key, v);
    }
    return out;
  };
  const a = flat(before);
  const b = flat(after);
  const changes: { attribute: string; before: unknown; after: unknown }[] = [];
  for (const key of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const x = a.get(key);
    const y = b.get(key);
    if (stableStringify(x) !== stableStringify(y)) changes.push({ attribute: key, before: x ?? null, after: y ?? null });
  }
  return changes;
}

/** The target's id after a write that must have worked; the error to report otherwise. */
function expectOk(o: TargetOutcome, what: string, label: string): string {
  if (o.kind === 'ok') return o.targetId;
  throw new IdsyncError(o.kind === 'conflict' ? 'CLOUD_CONFLICT' : 'CLOUD_REJECTED', `the cloud directory rejected the ${what} of ${label} (HTTP ${o.status}): ${o.detail}`, {
    hint: 'Correct the attribute in the source directory; the next cycle exports it again.',
    details: { status: o.status },
  });
}

function targetWrite(w: PreparedWrite): TargetWrite {
  return { objectType: w.row.object_type, targetId: w.row.cloud_id, json: w.doc };
}
