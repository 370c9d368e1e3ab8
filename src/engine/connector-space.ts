/**
 * Import: stages what a source connector streams into its connector space. An object whose content
 * did not change is not written (a run that changes nothing writes nothing); changed objects get a
 * pending import change for the sync step. Objects not seen by a complete full import become
 * pending deletes — only after the whole stream succeeded, so a failed import never deletes. A
 * delta import stages whole changed objects and explicit deletions the same way.
 */
import type { DeltaChange, SourceObject } from '../connectors/types.js';
import type { DnUnicode } from '../ldap/dn.js';
import type { Database } from '../store/database.js';
import { MultiRow, slices, valuesList } from './page-sql.js';
import { dnUnicodeOf, prepareObject, safeNormalizeDn, type PreparedObject } from './staging.js';
import type { StepCounts } from './runs.js';

/** See ImportStager's `project`. */
export interface StagedProjection {
  /**
   * A page of new objects (each anchor once): the metaverse id of each one projected now (its
   * metaverse row written), by index; undefined for the others.
   */
  project(objects: readonly SourceObject[]): (number | undefined)[];
  /** After their rows were written linked: what the sync does for newly connected objects (their groups, their count). */
  linked(objects: readonly { anchor: string; dnNorm: string }[]): void;
}

/** What the control-character rule removed during one staging (event 6006). */
export interface CleanedValues {
  objects: number;
  values: number;
  first?: { dn: string; attribute: string };
}

export class ImportStager {
  /** Values cleaned of control characters by this stager (core/attribute-values.ts). */
  readonly cleaned: CleanedValues = { objects: 0, values: 0 };
  private readonly lookup;
  private readonly insert;
  private readonly update;
  private readonly markSeen;
  private readonly deleteMembers;
  private readonly insertMember;
  private readonly anchorsByDn;
  /** Anchors this stager's delta upserted: a delete that names only a DN is not about them. */
  private readonly upsertedInDelta = new Set<string>();
  private readonly renameMember;
  private readonly markDeleted;
  private readonly groupsOfGone;
  private readonly touchByDn;
  private readonly dropGone;
  private readonly unicode: DnUnicode;
  /**
   * The connector space held nothing of this connector when the import began (its first import):
   * every row at the end is one this import staged, so nothing is marked seen and nothing can be
   * unseen, and an object is inserted without a look-up first (a duplicate anchor falls back to it).
   */
  private readonly fresh: boolean;
  /**
   * The source keeps referential integrity, as AD does: it rewrites member DNs when a member is
   * renamed and drops a deleted member from its groups, both without touching the groups.
   */
  private readonly integrity: boolean;

  private readonly insertRows;
  private readonly lookupPage;
  /**
   * While a page is staged (not a first import): the rows of its anchors, read in one statement,
   * kept current by this page's own writes (an anchor twice in a page sees the first one's
   * outcome, as a read would). null: no row. Dropped before the page's sync runs.
   */
  private pageRows: Map<string, { hash: string; pending: string | null; dn_norm: string } | null> | undefined;
  private readonly insertMemberRows;
  private readonly dropProjected;

  constructor(
    private readonly db: Database,
    private readonly connector: string,
    /** The connector kind ('ad', 'ldap', 'ldif'): how its directory compares DNs and keeps references. */
    kind = 'ldap',
    /**
     * The overlapped cycle's sync of a new object as it is staged into an empty connector space
     * (Synchronizer.projectStaged): returns its metaverse id, and the row is written linked with no
     * pending change; undefined leaves it pending for the sync pass, as always.
     */
    private readonly project?: StagedProjection,
  ) {
    this.unicode = dnUnicodeOf(kind);
    this.integrity = kind === 'ad';
    db.exec('CREATE TEMP TABLE IF NOT EXISTS import_seen (connector TEXT NOT NULL, anchor TEXT NOT NULL, PRIMARY KEY (connector, anchor)) WITHOUT ROWID');
    db.prepare('DELETE FROM temp.import_seen WHERE connector = ?').run(connector);
    this.fresh = db.prepare('SELECT 1 FROM cs_objects WHERE connector = ? LIMIT 1').get(connector) === undefined;
    this.lookup = db.prepare<[string, string], { hash: string; pending: string | null; dn_norm: string }>(
      'SELECT hash, pending, dn_norm FROM cs_objects WHERE connector = ? AND anchor = ?',
    );
    this.lookupPage = db.prepare<[string, string], { anchor: string; hash: string; pending: string | null; dn_norm: string }>(
      'SELECT anchor, hash, pending, dn_norm FROM cs_objects WHERE connector = ? AND anchor IN (SELECT value FROM json_each(?))',
    );
    // INDEXED BY: with `member_anchor IS NULL` in the filter SQLite otherwise walks every member row
    // of the connector (the primary key prefix) for each object: quadratic in the directory's size.
    this.renameMember = db.prepare('UPDATE OR IGNORE cs_members INDEXED BY cs_members_member SET member_dn = ? WHERE connector = ? AND member_dn = ? AND member_anchor IS NULL');
    this.insert = db.prepare(
      `INSERT INTO cs_objects (connector, anchor, object_type, dn, dn_norm, attrs, hash, pending) VALUES (?, ?, ?, ?, ?, ?, ?, 'add')`,
    );
    // A fresh import's rows, a slice of a page per statement: pending 'add' (or NULL and linked,
    // when projected at once). The anchors it answers are the rows written; one that is missing
    // came in an earlier page of this import. (Not a read of the page's anchors first: on a
    // PostgreSQL table filled in this very cycle the planner has no statistics yet, and read
    // `anchor = ANY(…)` through the connector's whole DN index, once per page: quadratic.)
    this.insertRows = new MultiRow(
      db,
      (n) => `INSERT INTO cs_objects (connector, anchor, object_type, dn, dn_norm, attrs, hash, pending, mv_id) VALUES ${valuesList(n, 9)}
       ON CONFLICT (connector, anchor) DO NOTHING RETURNING anchor`,
    );
    this.insertMemberRows = new MultiRow(db, (n) => `INSERT OR IGNORE INTO cs_members (connector, group_anchor, member_dn, member_anchor) VALUES ${valuesList(n, 4)}`);
    this.dropProjected = db.prepare('DELETE FROM mv_objects WHERE id = ?');
    this.update = db.prepare(
      `UPDATE cs_objects SET object_type = ?, dn = ?, dn_norm = ?, attrs = ?, hash = ?,
         pending = CASE WHEN pending = 'add' THEN 'add' ELSE 'update' END
       WHERE connector = ? AND anchor = ?`,
    );
    this.markSeen = db.prepare('INSERT OR IGNORE INTO temp.import_seen (connector, anchor) VALUES (?, ?)');
    this.deleteMembers = db.prepare('DELETE FROM cs_members WHERE connector = ? AND group_anchor = ?');
    this.insertMember = db.prepare('INSERT OR IGNORE INTO cs_members (connector, group_anchor, member_dn, member_anchor) VALUES (?, ?, ?, ?)');
    this.groupsOfGone = db.prepare(
      `UPDATE cs_objects SET pending = 'update' WHERE connector = ? AND pending IS NULL
         AND anchor IN (SELECT group_anchor FROM cs_members WHERE connector = ? AND member_anchor = ?)`,
    );
    this.touchByDn = db.prepare(
      `UPDATE cs_objects SET pending = 'update' WHERE connector = ? AND pending IS NULL
         AND anchor IN (SELECT group_anchor FROM cs_members INDEXED BY cs_members_member WHERE connector = ? AND member_dn = ? AND member_anchor IS NULL)`,
    );
    this.dropGone = db.prepare('DELETE FROM cs_members WHERE connector = ? AND member_anchor = ?');
    this.anchorsByDn = db.prepare<[string, string], { anchor: string }>('SELECT anchor FROM cs_objects WHERE connector = ? AND dn_norm = ?');
    this.markDeleted = db.prepare("UPDATE cs_objects SET pending = 'delete' WHERE connector = ? AND anchor = ? AND (pending IS NULL OR pending <> 'delete')");
  }

  /**
   * Stages one page of a full import in one transaction. `then` runs inside it, after the page
   * (the overlapped cycle's sync of the page: one commit for both instead of one each — each
   * commit writes every page it dirtied to the WAL, and both touch the same rows).
   */
  stagePage(objects: SourceObject[], counts: StepCounts, then?: () => void): void {
    this.writePage(
      objects.map((o) => this.prepare(o)),
      counts,
      then,
    );
  }

  /** stagePage() of objects prepared already (staging.ts: the full import's reader thread prepares its pages). */
  stagePrepared(objects: PreparedObject[], counts: StepCounts, then?: () => void): void {
    for (const p of objects) this.noteCleaned(p);
    this.writePage(objects, counts, then);
  }

  private writePage(objects: PreparedObject[], counts: StepCounts, then?: () => void): void {
    this.db.transaction(() => {
      if (this.fresh) this.stageFresh(objects, counts);
      else
        this.withPageRows(
          objects.map((p) => p.o.anchor),
          () => {
            for (const p of objects) {
              this.markSeen.run(this.connector, p.o.anchor);
              this.stageChanged(p, counts);
            }
          },
        );
      then?.();
    })();
  }

  /**
   * A page of a first import (an empty connector space): written per page, not per object — the
   * page's projections (one read of its tombstones, one insert per slice), its rows (one insert per
   * slice, which answers the anchors it wrote), its member rows, and one write that touches the
   * groups listing the linked objects. On PostgreSQL that is a few round trips per page instead of
   * ~4 per object. An anchor that comes again — later in this page, or already staged by an earlier
   * page — is an update of the first, staged after the page's new rows in page order, as before.
   */
  private stageFresh(objects: PreparedObject[], counts: StepCounts): void {
    const firsts: { at: number; p: PreparedObject; dnNorm: string; attrs: string }[] = [];
    const again: { at: number; p: PreparedObject }[] = [];
    const inPage = new Set<string>();
    objects.forEach((p, at) => {
      const o = p.o;
      if (inPage.has(o.anchor)) again.push({ at, p });
      else {
        inPage.add(o.anchor);
        firsts.push({ at, p, dnNorm: p.dnNorm ?? safeNormalizeDn(o.dn, this.unicode), attrs: p.attrs ?? JSON.stringify(o.attributes) });
      }
    });
    const projected = this.project?.project(firsts.map((f) => f.p.o)) ?? [];
    const written = new Set<string>();
    let at = 0;
    for (const slice of slices(firsts)) {
      const params: unknown[] = [];
      for (const f of slice) {
        const mvId = projected[at++];
        params.push(this.connector, f.p.o.anchor, f.p.o.objectType, f.p.o.dn, f.dnNorm, f.attrs, f.p.hash, mvId === undefined ? 'add' : null, mvId ?? null);
      }
      for (const r of this.insertRows.statement(slice.length).all(...params) as { anchor: string }[]) written.add(r.anchor);
    }
    const linked: { anchor: string; dnNorm: string }[] = [];
    const memberRows: [string, string, string, string | null][] = [];
    firsts.forEach((f, i) => {
      const mvId = projected[i];
      if (!written.has(f.p.o.anchor)) {
        // Staged by an earlier page of this import: an update of that row (below), and its
        // projection is taken back.
        if (mvId !== undefined) this.dropProjected.run(mvId);
        again.push({ at: f.at, p: f.p });
        return;
      }
      counts.adds++;
      if (mvId !== undefined) linked.push({ anchor: f.p.o.anchor, dnNorm: f.dnNorm });
      for (const m of f.p.members) memberRows.push([this.connector, f.p.o.anchor, m.dn, m.anchor]);
    });
    for (const slice of slices(memberRows)) this.insertMemberRows.statement(slice.length).run(...slice.flat());
    // This page's groups are pending 'add', so the touch reaches only groups of earlier pages
    // (already synced), as the same write per object did.
    this.project?.linked(linked);
    again.sort((a, b) => a.at - b.at);
    for (const a of again) this.stageChanged(a.p, counts);
  }

  /** Stages one page of a delta import: whole objects that changed, and deletions (`then`: as stagePage). */
  stageDelta(changes: DeltaChange[], counts: StepCounts, then?: () => void): void {
    this.db.transaction(() => {
      this.withPageRows(
        changes.flatMap((c) => (c.kind === 'upsert' ? [c.object.anchor] : c.anchor ? [c.anchor] : [])),
        () => this.stageChanges(changes, counts),
      );
      then?.();
    })();
  }

  /** Reads the rows of a page's anchors once (pageRows) while `fn` stages the page. */
  private withPageRows(anchors: string[], fn: () => void): void {
    const rows = new Map<string, { hash: string; pending: string | null; dn_norm: string } | null>();
    for (const a of anchors) rows.set(a, null);
    if (rows.size > 0) for (const r of this.lookupPage.all(this.connector, JSON.stringify([...rows.keys()]))) rows.set(r.anchor, { hash: r.hash, pending: r.pending, dn_norm: r.dn_norm });
    this.pageRows = rows;
    try {
      fn();
    } finally {
      this.pageRows = undefined;
    }
  }

  /** The staged row of an anchor: from the page's read when it holds the anchor, else read now. */
  private existingRow(anchor: string): { hash: string; pending: string | null; dn_norm: string } | undefined {
    const known = this.pageRows?.get(anchor);
    if (known !== undefined) return known ?? undefined;
    return this.lookup.get(this.connector, anchor);
  }

  /**
   * The object a delete names by its DN alone (an OpenLDAP accesslog entry without reqEntryUUID).
   * Not one this delta upserted at that DN: an entry deleted and created again at the same DN comes
   * as the new entry's upsert, then the old one's delete. None when the DN is still ambiguous: a
   * wrong deletion is worse than one the next full import finds.
   */
  private anchorOfDeletedDn(dn: string): string | undefined {
    const rows = this.anchorsByDn.all(this.connector, safeNormalizeDn(dn, this.unicode)).filter((r) => !this.upsertedInDelta.has(r.anchor));
    return rows.length === 1 ? rows[0]!.anchor : undefined;
  }

  private stageChanges(changes: DeltaChange[], counts: StepCounts): void {
    for (const c of changes) {
      if (c.kind === 'upsert') {
        this.stageObject(c.object, counts);
        this.upsertedInDelta.add(c.object.anchor);
        continue;
      }
      const anchor = c.anchor || (c.dn ? this.anchorOfDeletedDn(c.dn) : undefined);
      if (!anchor) continue; // never staged (e.g. out of scope all along)
      if (c.gone && this.integrity) {
        // AD dropped the deleted object from its groups without changing them: so do we (a
        // restored object, which keeps its objectGUID, is no member until a group lists it again).
        this.groupsOfGone.run(this.connector, this.connector, anchor);
        this.dropGone.run(this.connector, anchor);
      }
      const row = this.pageRows?.get(anchor);
      if (row !== undefined) {
        // Known from the page's read: the write's `changes` need not be waited for.
        this.markDeleted.run(this.connector, anchor);
        if (row !== null && row.pending !== 'delete') {
          counts.deletes++;
          row.pending = 'delete';
        }
      } else if (this.markDeleted.run(this.connector, anchor).changes > 0) counts.deletes++;
    }
  }

  private stageObject(o: SourceObject, counts: StepCounts): void {
    this.stageChanged(this.prepare(o), counts);
  }

  /** prepareObject (staging.ts) on the event loop, its cleaning counted. */
  private prepare(o: SourceObject): PreparedObject {
    const p = prepareObject(o, this.unicode);
    this.noteCleaned(p);
    return p;
  }

  /** What the control-character rule removed from one object, into this stager's count (event 6006). */
  private noteCleaned(p: PreparedObject): void {
    if (p.cleaned === undefined) return;
    this.cleaned.objects++;
    this.cleaned.values += p.cleaned.values;
    this.cleaned.first ??= { dn: p.o.dn, attribute: p.cleaned.first };
  }

  /** Stages an object that may have a row already: unchanged, an update of it, or a new row. */
  private stageChanged(p: PreparedObject, counts: StepCounts): void {
    const { o, members, hash } = p;
    const existing = this.existingRow(o.anchor);
    if (existing && existing.hash === hash && existing.pending !== 'delete') {
      counts.unchanged++;
      return;
    }
    const dnNorm = p.dnNorm ?? safeNormalizeDn(o.dn, this.unicode);
    const attrs = p.attrs ?? JSON.stringify(o.attributes);
    if (!existing) {
      this.insert.run(this.connector, o.anchor, o.objectType, o.dn, dnNorm, attrs, hash);
      counts.adds++;
    } else {
      this.update.run(o.objectType, o.dn, dnNorm, attrs, hash, this.connector, o.anchor);
      counts.updates++;
      // Active Directory keeps references intact when an object is renamed or moved, but does not
      // touch the groups (a delta import does not bring them): follow the rename in their members.
      // (Member rows with an anchor follow the object by themselves.)
      if (existing.dn_norm !== dnNorm) {
        if (this.integrity) this.renameMember.run(dnNorm, this.connector, existing.dn_norm);
        // Groups that name a member by DN lose it (old DN) or gain it (new DN): sync re-resolves them.
        this.touchByDn.run(this.connector, this.connector, existing.dn_norm);
        this.touchByDn.run(this.connector, this.connector, dnNorm);
      }
    }
    // What a read of the row would answer now (the same anchor again in this page).
    this.pageRows?.set(o.anchor, { hash, pending: existing?.pending === 'add' || !existing ? 'add' : 'update', dn_norm: dnNorm });
    // Member rows belong to groups: a new object has none, so only a changed one is cleared first.
    if (existing) this.deleteMembers.run(this.connector, o.anchor);
    for (const m of members) this.insertMember.run(this.connector, o.anchor, m.dn, m.anchor);
  }

  /** After a complete full import: everything not seen is gone from the source (or out of scope). */
  markUnseenDeleted(counts: StepCounts): void {
    if (this.fresh) return; // every row is one this import staged
    const info = this.db
      .prepare(
        `UPDATE cs_objects SET pending = 'delete'
         WHERE connector = ? AND (pending IS NULL OR pending <> 'delete')
           AND anchor NOT IN (SELECT anchor FROM temp.import_seen WHERE connector = ?)`,
      )
      .run(this.connector, this.connector);
    counts.deletes += info.changes;
    this.db.prepare('DELETE FROM temp.import_seen WHERE connector = ?').run(this.connector);
  }
}
