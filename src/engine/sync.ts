/**
 * Sync: applies pending connector-space changes to the metaverse.
 *  - scope: rules.scope conditions (attributes, group membership) beyond the connector's OUs; an
 *    object that leaves the scope is disconnected like a deleted one;
 *  - join: by anchor first (a connector object stays linked to its metaverse object), then by the
 *    configured soft-match rules (e.g. the same mail in two forests), else projection;
 *  - attribute flow: every connected object's inbound flow, merged by precedence;
 *  - group membership: members resolved through the connector space to metaverse ids, by the
 *    member's anchor where the source names it (AD), else by DN (LDAP: the DN is the reference).
 * A metaverse change raises the object's pending-export flag; unchanged content raises nothing.
 */
import type { ObjectType, SourceObject } from '../connectors/types.js';
import { isIdsyncError } from '../core/errors.js';
import type { CompiledRules } from '../rules/index.js';
import type { Database } from '../store/database.js';
import type { ParsedAttrs } from './export.js';
import type { MvAttrs } from './flows.js';
import { MultiRow, slices, valuesList } from './page-sql.js';
import type { StepHandle } from './runs.js';
import { stableStringify } from './stable-hash.js';

export type ConnectorKind = 'ad' | 'ldap' | 'ldif';

interface CsRow {
  connector: string;
  anchor: string;
  object_type: ObjectType;
  dn: string;
  dn_norm: string;
  attrs: string;
  pending: 'add' | 'update' | 'delete' | 'retry' | null;
  mv_id: number | null;
}

export interface SyncSettings {
  kinds: Map<string, ConnectorKind>;
  rules: CompiledRules;
  /** Whether soft-match join rules are configured (rules.join). */
  joinRules: boolean;
  /** Whether scope rules are configured (rules.scope). */
  scopeRules: boolean;
}

const CHUNK = 2000;

const toSource = (r: CsRow): SourceObject => ({ anchor: r.anchor, objectType: r.object_type, dn: r.dn, attributes: JSON.parse(r.attrs) });

export class Synchronizer {
  private readonly st;
  /**
   * While a chunk is synced without rules: the `type:anchor`s of its unlinked objects that have a
   * tombstone (read once per chunk). An anchor not in it has none, so no read per object; one in it
   * is looked up as before (a revive in the chunk may have taken it). Undefined: look up each.
   */
  private tombstoneHint: Set<string> | undefined;
  /** New metaverse objects of a page, one statement per slice; their ids come back with their anchors. */
  private readonly insertMvRows;
  /** A group's metaverse members, one statement per slice (a statement per member was most of a first cycle's statements). */
  private readonly insertMemberRows;

  constructor(
    private readonly db: Database,
    private readonly settings: SyncSettings,
  ) {
    this.st = {
      csByMv: db.prepare<[number], CsRow>('SELECT * FROM cs_objects WHERE mv_id = ?'),
      clear: db.prepare('UPDATE cs_objects SET pending = NULL WHERE connector = ? AND anchor = ?'),
      // An object that failed (a rule error): out of this run's walk, back in at the next one.
      retry: db.prepare("UPDATE cs_objects SET pending = 'retry' WHERE connector = ? AND anchor = ?"),
      unlink: db.prepare('UPDATE cs_objects SET mv_id = NULL, pending = NULL WHERE connector = ? AND anchor = ?'),
      link: db.prepare('UPDATE cs_objects SET mv_id = ? WHERE connector = ? AND anchor = ?'),
      linkDone: db.prepare('UPDATE cs_objects SET mv_id = ?, pending = NULL WHERE connector = ? AND anchor = ?'),
      remove: db.prepare('DELETE FROM cs_objects WHERE connector = ? AND anchor = ?'),
      removeMembers: db.prepare('DELETE FROM cs_members WHERE connector = ? AND group_anchor = ?'),
      contributors: db.prepare<[number], { n: number }>('SELECT COUNT(*) AS n FROM cs_objects WHERE mv_id = ?'),
      recompute: db.prepare("UPDATE cs_objects SET pending = 'update' WHERE mv_id = ? AND pending IS NULL"),
      tombstone: db.prepare('UPDATE mv_objects SET deleted = 1, pending_export = 1, updated_at = ? WHERE id = ?'),
      groupsOf: db.prepare('UPDATE mv_objects SET pending_export = 1 WHERE id IN (SELECT group_id FROM mv_members WHERE member_id = ?)'),
      dropMemberships: db.prepare('DELETE FROM mv_members WHERE member_id = ? OR group_id = ?'),
      dropJoinKeys: db.prepare('DELETE FROM mv_join_keys WHERE mv_id = ?'),
      addJoinKey: db.prepare('INSERT OR IGNORE INTO mv_join_keys (object_type, rule, value, mv_id) VALUES (?, ?, ?, ?)'),
      findJoin: db.prepare<[string, string, string, string], { mv_id: number }>(
        `SELECT DISTINCT k.mv_id FROM mv_join_keys k JOIN mv_objects m ON m.id = k.mv_id
         WHERE k.object_type = ? AND k.rule = ? AND k.value = ? AND m.deleted = 0
           AND NOT EXISTS (SELECT 1 FROM cs_objects c WHERE c.mv_id = k.mv_id AND c.connector = ?)`,
      ),
      // RETURNING id: the new id comes with the insert's answer (on PostgreSQL lastInsertRowid is a
      // second round trip, lastval()).
      insertMv: db.prepare<[string, string, string], { id: number }>("INSERT INTO mv_objects (object_type, source_anchor, attrs, pending_export, updated_at) VALUES (?, ?, '{}', 1, ?) RETURNING id"),
      insertMvWith: db.prepare<[string, string, string, string], { id: number }>(
        'INSERT INTO mv_objects (object_type, source_anchor, attrs, pending_export, updated_at) VALUES (?, ?, ?, 1, ?) RETURNING id',
      ),
      tombstoned: db.prepare<[string, string], { id: number }>('SELECT id FROM mv_objects WHERE source_anchor = ? AND object_type = ? AND deleted = 1 LIMIT 1'),
      // The anchors of a page that have a tombstone of their type: one read per page, not per object.
      tombstonedOf: db.prepare<[string, string], { source_anchor: string }>(
        'SELECT DISTINCT source_anchor FROM mv_objects WHERE object_type = ? AND deleted = 1 AND source_anchor IN (SELECT value FROM json_each(?))',
      ),
      revive: db.prepare('UPDATE mv_objects SET deleted = 0, pending_export = 1, updated_at = ? WHERE id = ?'),
      // A member row names its object by anchor (AD) or by DN (LDAP, where the DN is the reference).
      // INDEXED BY: with `member_anchor IS NULL` SQLite otherwise walks every member row of the
      // connector for each object (quadratic: 50k users took minutes in bench:sync).
      // The groups that list any of the members (JSON lists of anchors and of DNs) are marked for
      // re-evaluation in one write: nothing to read back, so on PostgreSQL it rides with the next
      // statement that is sent (a read of the groups and a write per group cost a round trip per member).
      // INDEXED BY: with an IN list SQLite otherwise walks the connector's member rows for the anchors.
      touchGroups: db.prepare(
        `UPDATE cs_objects SET pending = 'update' WHERE connector = ? AND pending IS NULL AND anchor IN (
           SELECT group_anchor FROM cs_members INDEXED BY cs_members_member_anchor WHERE connector = ? AND member_anchor IS NOT NULL AND member_anchor IN (SELECT value FROM json_each(?))
           UNION SELECT group_anchor FROM cs_members INDEXED BY cs_members_member WHERE connector = ? AND member_dn IN (SELECT value FROM json_each(?)) AND member_anchor IS NULL)`,
      ),
      // A chunk's reads, one statement per chunk instead of one per object (applyChanges).
      mvOf: db.prepare<[string], { id: number; attrs: string; deleted: number; source_anchor: string }>(
        'SELECT id, attrs, deleted, source_anchor FROM mv_objects WHERE id IN (SELECT value FROM json_each(?))',
      ),
      membersOf: db.prepare<[string], { group_id: number; member_id: number }>(
        'SELECT group_id, member_id FROM mv_members WHERE group_id IN (SELECT value FROM json_each(?)) ORDER BY group_id, member_id',
      ),
      // The metaverse ids of the members of a connector's groups (as applyChanges' memberIds, for many groups at once).
      memberIdsOf: db.prepare<[string, string, string, string], { g: string; mv_id: number }>(
        `SELECT m.group_anchor AS g, cs.mv_id AS mv_id FROM cs_members m
         CROSS JOIN cs_objects cs ON cs.connector = m.connector AND cs.anchor = m.member_anchor
         WHERE m.connector = ? AND m.group_anchor IN (SELECT value FROM json_each(?)) AND m.member_anchor IS NOT NULL AND cs.mv_id IS NOT NULL
         UNION
         SELECT m.group_anchor AS g, cs.mv_id AS mv_id FROM cs_members m
         CROSS JOIN cs_objects cs INDEXED BY cs_objects_dn ON cs.connector = m.connector AND cs.dn_norm = m.member_dn
         WHERE m.connector = ? AND m.group_anchor IN (SELECT value FROM json_each(?)) AND m.member_anchor IS NULL AND cs.mv_id IS NOT NULL`,
      ),
      memberOf: db.prepare<[string, string, string, string], { x: number }>(
        // CROSS JOIN: find the group by DN first, then look in its own member rows (not all of them).
        `SELECT 1 AS x FROM cs_objects g CROSS JOIN cs_members m ON m.connector = g.connector AND m.group_anchor = g.anchor
         WHERE g.connector = ? AND g.dn_norm = ? AND (m.member_anchor = ? OR (m.member_anchor IS NULL AND m.member_dn = ?)) LIMIT 1`,
      ),
    };
    this.insertMemberRows = new MultiRow(db, (n) => `INSERT OR IGNORE INTO mv_members (group_id, member_id) VALUES ${valuesList(n, 2)}`);
    this.insertMvRows = new MultiRow(
      db,
      (n) => `INSERT INTO mv_objects (object_type, source_anchor, attrs, pending_export, updated_at) VALUES ${valuesList(n, 5)} RETURNING id, source_anchor`,
    );
  }

  /** Full sync: re-evaluate every connector-space object (after a rule change, or on demand). */
  markAllForSync(): void {
    this.db.prepare("UPDATE cs_objects SET pending = 'update' WHERE pending IS NULL").run();
  }

  run(step: StepHandle): void {
    this.requeueFailed();
    this.pass(step);
  }

  /** Objects that failed last time are tried again (and reported again while they fail): once per cycle. */
  requeueFailed(): void {
    this.db.prepare("UPDATE cs_objects SET pending = 'update' WHERE pending IS NOT NULL AND pending = 'retry'").run();
  }

  /**
   * Applies what is pending now. The overlapped cycle calls this after every staged import page
   * (an object that fails stays 'retry' until the next cycle's requeueFailed, so it is reported once).
   */
  pass(step: StepHandle): void {
    this.applyDeletes(step);
    if (this.settings.scopeRules && this.settings.rules.needsMemberOf) this.rescopeOnGroupChange();
    this.scopeAndJoin(step);
    this.applyChanges('user', step);
    this.applyChanges('group', step);
  }

  /** Marks the groups (of one connector) that list a member (by its anchor or DN) for re-evaluation. */
  private touchGroups(connector: string, member: { anchor: string; dn_norm: string }): void {
    this.touchGroupsOf(connector, [member.anchor], [member.dn_norm]);
  }

  private touchGroupsOf(connector: string, anchors: readonly string[], dns: readonly string[]): void {
    this.st.touchGroups.run(connector, connector, JSON.stringify(anchors), connector, JSON.stringify(dns));
  }

  /**
   * Removes a connector object from its metaverse object. The metaverse object is deleted when
   * nothing else contributes to it; otherwise the remaining contributors recompute it.
   */
  private disconnect(r: CsRow, step: StepHandle, now: string): void {
    if (r.mv_id == null) return;
    if ((this.st.contributors.get(r.mv_id)?.n ?? 0) > 0) {
      this.st.recompute.run(r.mv_id);
      step.counts.updates++;
      return;
    }
    this.st.groupsOf.run(r.mv_id);
    this.st.dropMemberships.run(r.mv_id, r.mv_id);
    this.st.dropJoinKeys.run(r.mv_id);
    this.st.tombstone.run(now, r.mv_id);
    step.counts.deletes++;
  }

  /**
   * `idsync connectors forget`: every object of a connector that left the configuration leaves the
   * metaverse as if its source had deleted it (a metaverse object only it contributed becomes a
   * tombstone the next export deletes, under the deletion threshold; one other connectors share is
   * recomputed from them). Its connector space is empty afterwards. Returns how many objects it held.
   */
  forgetConnector(connector: string, step: StepHandle): number {
    return this.db.transaction(() => {
      const marked = this.db.prepare("UPDATE cs_objects SET pending = 'delete' WHERE connector = ?").run(connector).changes;
      this.applyDeletes(step, connector);
      // Member rows of groups that are gone with it, in case a row outlived its group.
      this.db.prepare('DELETE FROM cs_members WHERE connector = ?').run(connector);
      return marked;
    })();
  }

  private applyDeletes(step: StepHandle, connector?: string): void {
    const rows =
      connector === undefined
        ? this.db.prepare<[], CsRow>("SELECT * FROM cs_objects WHERE pending IS NOT NULL AND pending = 'delete'").all()
        : this.db.prepare<[string], CsRow>("SELECT * FROM cs_objects WHERE connector = ? AND pending IS NOT NULL AND pending = 'delete'").all(connector);
    const now = new Date().toISOString();
    this.db.transaction(() => {
      for (const r of rows) {
        this.st.remove.run(r.connector, r.anchor);
        this.st.removeMembers.run(r.connector, r.anchor);
        this.touchGroups(r.connector, r);
        this.disconnect(r, step, now);
      }
    })();
  }

  /** A scope group's membership changed: every object of that connector is re-scoped. */
  private rescopeOnGroupChange(): void {
    const groups = this.db
      .prepare<[], { connector: string }>("SELECT DISTINCT connector FROM cs_objects WHERE pending IS NOT NULL AND pending IN ('add', 'update') AND object_type = 'group'")
      .all();
    for (const g of groups) this.db.prepare("UPDATE cs_objects SET pending = 'update' WHERE connector = ? AND pending IS NULL AND object_type = 'user'").run(g.connector);
  }

  /**
   * Pass 1: scope, then join or project every pending object, so that group members can resolve
   * to metaverse ids in pass 2.
   */
  private scopeAndJoin(step: StepHandle): void {
    const { joinRules, scopeRules } = this.settings;
    const now = new Date().toISOString();
    // Narrow rows, in chunks (a million pending objects must not sit in memory at once); the whole
    // object is read only when a rule needs it. Without rules only unlinked objects need this pass,
    // and linking them is what moves the walk on; with rules every pending object is visited, in
    // key order.
    const withRules = scopeRules || joinRules;
    // Without rules, unlinked users are projected by applyChanges as it computes them (one write
    // of each row instead of a link here and a clear there); only groups are linked ahead, so that
    // nested groups resolve as members.
    const unlinked = this.db.prepare<[number], Omit<CsRow, 'dn' | 'attrs'>>(
      "SELECT connector, anchor, object_type, dn_norm, pending, mv_id FROM cs_objects WHERE pending IS NOT NULL AND pending IN ('add', 'update') AND object_type = 'group' AND mv_id IS NULL LIMIT ?",
    );
    const after = this.db.prepare<[string, string, string, number], Omit<CsRow, 'dn' | 'attrs'>>(
      `SELECT connector, anchor, object_type, dn_norm, pending, mv_id FROM cs_objects
       WHERE pending IS NOT NULL AND pending IN ('add', 'update') AND (connector > ? OR (connector = ? AND anchor > ?))
       ORDER BY connector, anchor LIMIT ?`,
    );
    const full = this.db.prepare<[string, string], CsRow>('SELECT * FROM cs_objects WHERE connector = ? AND anchor = ?');
    let cursor: [string, string] = ['', ''];
    for (;;) {
      const rows = withRules ? after.all(cursor[0], cursor[0], cursor[1], CHUNK) : unlinked.all(CHUNK);
      if (rows.length === 0) return;
      const last = rows[rows.length - 1]!;
      // Guard: without rules every visited object gets linked; a chunk that comes back the same means it did not.
      if (!withRules && cursor[0] === last.connector && cursor[1] === last.anchor) return;
      cursor = [last.connector, last.anchor];
      this.scopeAndJoinChunk(rows, full, step, now);
    }
  }

  private scopeAndJoinChunk(
    rows: Omit<CsRow, 'dn' | 'attrs'>[],
    full: { get(connector: string, anchor: string): CsRow | undefined },
    step: StepHandle,
    now: string,
  ): void {
    const { rules, joinRules, scopeRules } = this.settings;
    // Without rules nothing in the chunk makes a tombstone (no disconnect), so the hint holds.
    const hinted = (fn: () => void) => (scopeRules || joinRules ? fn() : this.withTombstoneHint(rows, fn));
    this.db.transaction(() => hinted(() => {
      for (const narrow of rows) {
        if (scopeRules || joinRules || narrow.mv_id == null) {
          const r: CsRow = scopeRules || joinRules ? full.get(narrow.connector, narrow.anchor)! : { ...narrow, dn: narrow.dn_norm, attrs: '{}' };
          const source = scopeRules || joinRules ? toSource(r) : undefined;
          if (scopeRules && source) {
            let inScope: boolean;
            try {
              inScope = rules.inScope(r.connector, source, (groupDn) => this.st.memberOf.get(r.connector, groupDn, r.anchor, r.dn_norm) !== undefined);
            } catch (err) {
              step.error(isIdsyncError(err) ? err.code : 'OBJECT_INVALID', (err as Error).message, r.dn);
              this.st.retry.run(r.connector, r.anchor);
              continue;
            }
            if (!inScope) {
              // Out of scope: not projected; disconnected if it was (its cloud object goes).
              this.st.unlink.run(r.connector, r.anchor);
              this.disconnect(r, step, now);
              continue;
            }
          }
          if (r.mv_id != null) continue;
          const match = joinRules && source ? this.softMatch(r, source, step) : undefined;
          this.connect(r, match, now);
        }
      }
    }))();
  }

  /** Joins (soft match) or projects an unlinked object, links it, and touches the groups that list it. */
  private connect(r: Pick<CsRow, 'connector' | 'anchor' | 'object_type' | 'dn_norm'>, match: { mvId?: number; keys: { rule: string; value: string }[] } | undefined, now: string): number {
    let mvId = match?.mvId;
    if (mvId === undefined) {
      const dead = this.tombstoneOf(r);
      if (dead) this.st.revive.run(now, dead.id);
      mvId = dead ? dead.id : Number(this.st.insertMv.get(r.object_type, r.anchor, now)!.id);
      // Its keys at once, so an object of another source in this same cycle can join it.
      for (const k of match?.keys ?? []) this.st.addJoinKey.run(r.object_type, k.rule, k.value, mvId);
    }
    this.st.link.run(mvId, r.connector, r.anchor);
    // A newly connected member may complete a group's membership.
    this.touchGroups(r.connector, r);
    return mvId;
  }

  /**
   * The overlapped first cycle (pipeline.ts): the new users of a page, staged into an empty
   * connector space with no rules configured, are projected as the stager writes them, from the
   * objects it holds (no pending change, no second write of their rows, no read and parse of them
   * back). Returns each object's metaverse id (by index), or undefined where the sync pass is to
   * decide: not a user, a tombstone to revive, a flow that fails, an anchor already projected
   * earlier in this page. The outcome is projectNew's. Runs inside the page's transaction; one
   * read of the page's tombstones and one insert per slice of the page (on PostgreSQL: round trips
   * per page, not per object).
   */
  projectStaged(connector: string, objects: readonly SourceObject[], handoff?: ParsedAttrs): (number | undefined)[] {
    const { rules, kinds, joinRules, scopeRules } = this.settings;
    const out = new Array<number | undefined>(objects.length).fill(undefined);
    if (joinRules || scopeRules) return out;
    const users: number[] = [];
    for (let i = 0; i < objects.length; i++) if (objects[i]!.objectType === 'user') users.push(i);
    if (users.length === 0) return out;
    const dead = new Set(this.st.tombstonedOf.all('user', JSON.stringify(users.map((i) => objects[i]!.anchor))).map((r) => r.source_anchor));
    const rows: { i: number; anchor: string; text: string; attrs: MvAttrs }[] = [];
    const taken = new Set<string>();
    for (const i of users) {
      const o = objects[i]!;
      if (dead.has(o.anchor) || taken.has(o.anchor)) continue;
      let attrs: MvAttrs;
      try {
        attrs = rules.inbound(connector, kinds.get(connector) ?? 'ldap', o);
      } catch {
        continue;
      }
      attrs.sourceAnchor = o.anchor;
      taken.add(o.anchor);
      rows.push({ i, anchor: o.anchor, text: stableStringify(attrs), attrs });
    }
    const now = new Date().toISOString();
    const ids = new Map<string, number>();
    for (const slice of slices(rows)) {
      const params: unknown[] = [];
      for (const r of slice) params.push('user', r.anchor, r.text, 1, now);
      for (const r of this.insertMvRows.statement(slice.length).all(...params) as { id: number; source_anchor: string }[]) ids.set(r.source_anchor, Number(r.id));
    }
    for (const r of rows) {
      const mvId = ids.get(r.anchor)!;
      out[r.i] = mvId;
      // The early export takes the object as it is (no parse of the text back): only when the text
      // holds every key of it (an undefined value is left out of the text).
      if (handoff && Object.values(r.attrs).every((v) => v !== undefined)) handoff.put(mvId, r.text, r.attrs);
    }
    return out;
  }

  /** After projectStaged, once the connector-space rows are written linked: their groups, their count. */
  stagedLinked(connector: string, objects: readonly { anchor: string; dnNorm: string }[], step: StepHandle): void {
    if (objects.length === 0) return;
    this.touchGroupsOf(
      connector,
      objects.map((o) => o.anchor),
      objects.map((o) => o.dnNorm),
    );
    step.counts.adds += objects.length;
  }

  /**
   * Without rules: a new user is projected with its attributes in one write of each row (the
   * metaverse insert, the link that also clears the pending change). The outcome is the two
   * passes' (scopeAndJoin, then the flow): an object with a tombstone to revive, or whose flow
   * fails, takes that way. Returns false when it did not apply.
   */
  private projectNew(r: CsRow, step: StepHandle, now: string): boolean {
    if (this.tombstoneOf(r)) return false;
    let attrs: MvAttrs;
    try {
      attrs = this.settings.rules.inbound(r.connector, this.settings.kinds.get(r.connector) ?? 'ldap', toSource(r));
    } catch {
      return false; // the two passes report it
    }
    attrs.sourceAnchor = r.anchor;
    const mvId = Number(this.st.insertMvWith.get(r.object_type, r.anchor, stableStringify(attrs), now)!.id);
    this.st.linkDone.run(mvId, r.connector, r.anchor);
    this.touchGroups(r.connector, r);
    step.counts.adds++;
    return true;
  }

  /** A tombstone with the object's anchor and type (the hint saves the read where there is none). */
  private tombstoneOf(r: Pick<CsRow, 'anchor' | 'object_type'>): { id: number } | undefined {
    if (this.tombstoneHint && !this.tombstoneHint.has(`${r.object_type}:${r.anchor}`)) return undefined;
    return this.st.tombstoned.get(r.anchor, r.object_type);
  }

  /** Runs `fn` with the tombstone hint of these unlinked objects (one read per object type). */
  private withTombstoneHint<T>(rows: readonly Pick<CsRow, 'anchor' | 'object_type' | 'mv_id'>[], fn: () => T): T {
    const hint = new Set<string>();
    for (const type of ['user', 'group'] as const) {
      const anchors = rows.filter((r) => r.mv_id == null && r.object_type === type).map((r) => r.anchor);
      if (anchors.length > 0) for (const t of this.st.tombstonedOf.all(type, JSON.stringify(anchors))) hint.add(`${type}:${t.source_anchor}`);
    }
    this.tombstoneHint = hint;
    try {
      return fn();
    } finally {
      this.tombstoneHint = undefined;
    }
  }

  /**
   * The metaverse rows of a chunk's new users (no rules), one insert per slice: what projectNew
   * writes for each. Left out, to take projectNew's way one by one: a tombstone to revive, a flow
   * that fails, an anchor that comes twice in the chunk (from two connectors). Runs inside the
   * chunk's tombstone hint.
   */
  private projectChunk(rows: readonly CsRow[], now: string): Map<CsRow, number> {
    const { rules, kinds } = this.settings;
    const candidates: { r: CsRow; text: string }[] = [];
    const count = new Map<string, number>();
    for (const r of rows) if (r.mv_id == null) count.set(r.anchor, (count.get(r.anchor) ?? 0) + 1);
    for (const r of rows) {
      if (r.mv_id != null || count.get(r.anchor) !== 1 || this.tombstoneOf(r)) continue;
      let attrs: MvAttrs;
      try {
        attrs = rules.inbound(r.connector, kinds.get(r.connector) ?? 'ldap', toSource(r));
      } catch {
        continue;
      }
      attrs.sourceAnchor = r.anchor;
      candidates.push({ r, text: stableStringify(attrs) });
    }
    const ids = new Map<string, number>();
    for (const slice of slices(candidates)) {
      const params: unknown[] = [];
      for (const c of slice) params.push(c.r.object_type, c.r.anchor, c.text, 1, now);
      for (const m of this.insertMvRows.statement(slice.length).all(...params) as { id: number; source_anchor: string }[]) ids.set(m.source_anchor, Number(m.id));
    }
    return new Map(candidates.map((c) => [c.r, ids.get(c.r.anchor)!]));
  }

  /**
   * Soft match: the first join rule whose value matches exactly one metaverse object joins it.
   * Returns the match (if any) and the object's own join keys.
   */
  private softMatch(r: CsRow, source: SourceObject, step: StepHandle): { mvId?: number; keys: { rule: string; value: string }[] } | undefined {
    const { rules, kinds } = this.settings;
    let attrs: MvAttrs;
    try {
      attrs = rules.inbound(r.connector, kinds.get(r.connector) ?? 'ldap', source);
    } catch {
      return undefined; // reported by the attribute flow in pass 2
    }
    const keys = rules.joinKeys(r.object_type, attrs);
    for (const key of keys) {
      const matches = this.st.findJoin.all(r.object_type, key.rule, key.value, r.connector);
      if (matches.length === 1) return { mvId: matches[0]!.mv_id, keys };
      if (matches.length > 1) {
        step.error('JOIN_AMBIGUOUS', `join rule "${key.rule}" matches ${matches.length} metaverse objects; projected as a new object instead`, r.dn);
        return { keys };
      }
    }
    return { keys };
  }

  /** Pass 2: recompute each changed metaverse object from all its connected objects. */
  private applyChanges(type: ObjectType, step: StepHandle): void {
    const { rules, kinds, joinRules, scopeRules } = this.settings;
    const withRules = joinRules || scopeRules;
    const select = this.db.prepare<[string, number], CsRow>(
      "SELECT * FROM cs_objects WHERE pending IS NOT NULL AND pending IN ('add', 'update') AND object_type = ? LIMIT ?",
    );
    const getMv = this.db.prepare<[number], { attrs: string; deleted: number; source_anchor: string }>('SELECT attrs, deleted, source_anchor FROM mv_objects WHERE id = ?');
    const setMv = this.db.prepare('UPDATE mv_objects SET attrs = ?, deleted = 0, pending_export = 1, updated_at = ? WHERE id = ?');
    const memberIds = this.db.prepare<[string, string, string, string], { mv_id: number }>(
      // CROSS JOIN keeps SQLite from scanning the whole connector space per group: walk the
      // group's member rows, then look each member up by anchor (AD) or else by DN (LDAP).
      `SELECT cs.mv_id AS mv_id FROM cs_members m
       CROSS JOIN cs_objects cs ON cs.connector = m.connector AND cs.anchor = m.member_anchor
       WHERE m.connector = ? AND m.group_anchor = ? AND m.member_anchor IS NOT NULL AND cs.mv_id IS NOT NULL
       UNION
       SELECT cs.mv_id AS mv_id FROM cs_members m
       CROSS JOIN cs_objects cs INDEXED BY cs_objects_dn ON cs.connector = m.connector AND cs.dn_norm = m.member_dn
       WHERE m.connector = ? AND m.group_anchor = ? AND m.member_anchor IS NULL AND cs.mv_id IS NOT NULL`,
    );
    const currentMembers = this.db.prepare<[number], { member_id: number }>('SELECT member_id FROM mv_members WHERE group_id = ? ORDER BY member_id');
    const deleteMembers = this.db.prepare('DELETE FROM mv_members WHERE group_id = ?');
    const flag = this.db.prepare('UPDATE mv_objects SET pending_export = 1 WHERE id = ?');

    for (;;) {
      const rows = select.all(type, CHUNK);
      if (rows.length === 0) return;
      const now = new Date().toISOString();
      this.db.transaction(() => {
        const done = new Set<number>();
        // The chunk's metaverse rows, current memberships and member ids, each read once (on
        // PostgreSQL a round trip per chunk instead of per object). Nothing in the chunk changes
        // what they answer for an object before it is processed: each metaverse object is
        // processed once (done), new ones (connect) are read on their own, and without join rules
        // no link of a member changes in a chunk of groups.
        const linkedIds = [...new Set(rows.flatMap((r) => (r.mv_id == null ? [] : [r.mv_id])))];
        const mvRows = new Map(linkedIds.length > 0 ? this.st.mvOf.all(JSON.stringify(linkedIds)).map((m) => [Number(m.id), m] as const) : []);
        const readMv = (id: number) => mvRows.get(id) ?? getMv.get(id);
        let current: Map<number, number[]> | undefined;
        let memberMvIds: Map<string, number[]> | undefined;
        if (type === 'group' && !joinRules && linkedIds.length > 0) {
          current = new Map(linkedIds.map((id) => [id, []]));
          for (const m of this.st.membersOf.all(JSON.stringify(linkedIds))) current.get(Number(m.group_id))?.push(Number(m.member_id));
          memberMvIds = new Map();
          for (const connector of new Set(rows.map((r) => r.connector))) {
            const anchors = JSON.stringify(rows.filter((r) => r.connector === connector).map((r) => r.anchor));
            for (const m of this.st.memberIdsOf.all(connector, anchors, connector, anchors)) {
              const key = `${connector}\u0000${m.g}`;
              const list = memberMvIds.get(key);
              if (list) list.push(Number(m.mv_id));
              else memberMvIds.set(key, [Number(m.mv_id)]);
            }
          }
        }
        const hinted = (fn: () => void) => (type === 'user' && !withRules ? this.withTombstoneHint(rows, fn) : fn());
        hinted(() => {
          // New users without rules: their metaverse rows written for the whole chunk at once (projectNew's outcome).
          const projected = type === 'user' && !withRules ? this.projectChunk(rows, now) : undefined;
          for (const r of rows) {
            if (r.mv_id == null && !withRules && type === 'user') {
              // Not linked yet (scopeAndJoin links only groups without rules): a new user.
              const mvId = projected?.get(r);
              if (mvId !== undefined) {
                this.st.linkDone.run(mvId, r.connector, r.anchor);
                this.touchGroups(r.connector, r);
                step.counts.adds++;
                continue;
              }
              if (this.projectNew(r, step, now)) continue;
              r.mv_id = this.connect(r, undefined, now);
            }
            this.st.clear.run(r.connector, r.anchor);
            if (r.mv_id == null || done.has(r.mv_id)) continue;
            const mvId = r.mv_id;
            done.add(mvId);
            // Without join rules a metaverse object has exactly one connector object: this one.
            const contributors = joinRules ? this.st.csByMv.all(mvId) : [r];
            const contributions: { connector: string; attrs: MvAttrs }[] = [];
            for (const c of contributors) {
              try {
                contributions.push({ connector: c.connector, attrs: rules.inbound(c.connector, kinds.get(c.connector) ?? 'ldap', toSource(c)) });
              } catch (err) {
                step.error(isIdsyncError(err) ? err.code : 'OBJECT_INVALID', (err as Error).message, c.dn);
                this.st.retry.run(c.connector, c.anchor);
              }
            }
            if (contributions.length === 0) continue;
            const before = readMv(mvId);
            const attrs = contributions.length === 1 ? contributions[0]!.attrs : rules.merge(contributions);
            // The cloud object's externalId is the anchor that projected it, whoever has precedence.
            if (before) attrs.sourceAnchor = before.source_anchor;
            const wasNew = !before || before.attrs === '{}';
            let changed = false;
            const serialized = stableStringify(attrs);
            if (!before || before.attrs !== serialized || before.deleted) {
              setMv.run(serialized, now, mvId);
              changed = true;
              if (joinRules) {
                this.st.dropJoinKeys.run(mvId);
                for (const k of rules.joinKeys(type, attrs)) this.st.addJoinKey.run(type, k.rule, k.value, mvId);
              }
            }
            if (type === 'group') {
              const ids = new Set<number>();
              for (const c of contributors) {
                const known = memberMvIds?.get(`${c.connector}\u0000${c.anchor}`);
                for (const id of memberMvIds ? (known ?? []) : memberIds.all(c.connector, c.anchor, c.connector, c.anchor).map((m) => m.mv_id)) if (id !== mvId) ids.add(id);
              }
              const next = [...ids].sort((a, b) => a - b);
              const prev = current?.get(mvId) ?? currentMembers.all(mvId).map((m) => m.member_id);
              if (next.join(',') !== prev.join(',')) {
                deleteMembers.run(mvId);
                for (const slice of slices(next)) this.insertMemberRows.statement(slice.length).run(...slice.flatMap((id) => [mvId, id]));
                flag.run(mvId);
                changed = true;
              }
            }
            if (wasNew) step.counts.adds++;
            else if (changed) step.counts.updates++;
            else step.counts.unchanged++;
          }
        });
      })();
    }
  }
}
