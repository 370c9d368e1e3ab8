/**
 * Sync: applies pending connector-space changes to the metaverse. Join by anchor (each connector
 * object links to one metaverse object), projection of new objects, inbound attribute flow, and
 * group membership resolved from member DNs to metaverse ids. A metaverse change raises the
 * object's pending-export flag; unchanged content raises nothing.
 */
import type { ObjectType, SourceObject } from '../connectors/types.js';
import type { Database } from '../store/database.js';
import { inboundFlow, type MvAttrs } from './flows.js';
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
  pending: 'add' | 'update' | 'delete';
  mv_id: number | null;
}

const CHUNK = 2000;

export class Synchronizer {
  constructor(
    private readonly db: Database,
    private readonly kinds: Map<string, ConnectorKind>,
  ) {}

  /** Full sync: re-evaluate every connector-space object (after a rule change, or on demand). */
  markAllForSync(): void {
    this.db.prepare("UPDATE cs_objects SET pending = 'update' WHERE pending IS NULL").run();
  }

  run(step: StepHandle): void {
    this.project();
    this.applyDeletes(step);
    this.applyChanges('user', step);
    this.applyChanges('group', step);
  }

  /** Marks for re-sync the groups (of one connector) that list a member DN. */
  private touchGroupsStatement(): { run(connector: string, memberDn: string): void } {
    const groups = this.db.prepare<[string, string], { group_anchor: string }>('SELECT group_anchor FROM cs_members WHERE connector = ? AND member_dn = ?');
    const mark = this.db.prepare("UPDATE cs_objects SET pending = 'update' WHERE connector = ? AND anchor = ? AND pending IS NULL");
    return {
      run: (connector, memberDn) => {
        for (const g of groups.all(connector, memberDn)) mark.run(connector, g.group_anchor);
      },
    };
  }

  /** Pass 1: every new object gets a metaverse id first, so members can resolve in pass 2. */
  private project(): void {
    const now = new Date().toISOString();
    const rows = this.db
      .prepare<[], { connector: string; anchor: string; object_type: string; dn_norm: string }>(
        "SELECT connector, anchor, object_type, dn_norm FROM cs_objects WHERE pending IS NOT NULL AND pending IN ('add', 'update')",
      )
      .all();
    const insertMv = this.db.prepare("INSERT INTO mv_objects (object_type, source_anchor, attrs, pending_export, updated_at) VALUES (?, ?, '{}', 1, ?)");
    // An object that comes back before its deletion was exported (e.g. a stopped mass delete that
    // was undone at the source) rejoins its metaverse object instead of making a second one.
    const tombstoned = this.db.prepare<[string, string], { id: number }>(
      'SELECT id FROM mv_objects WHERE source_anchor = ? AND object_type = ? AND deleted = 1 LIMIT 1',
    );
    const revive = this.db.prepare('UPDATE mv_objects SET deleted = 0, pending_export = 1, updated_at = ? WHERE id = ?');
    const link = this.db.prepare('UPDATE cs_objects SET mv_id = ? WHERE connector = ? AND anchor = ? AND mv_id IS NULL');
    const hasMv = this.db.prepare<[string, string], { mv_id: number | null }>('SELECT mv_id FROM cs_objects WHERE connector = ? AND anchor = ?');
    // A newly projected member may complete a group's membership: re-evaluate groups naming its DN.
    const touchGroups = this.touchGroupsStatement();
    this.db.transaction(() => {
      for (const r of rows) {
        if (hasMv.get(r.connector, r.anchor)?.mv_id == null) {
          const dead = tombstoned.get(r.anchor, r.object_type);
          if (dead) revive.run(now, dead.id);
          const id = dead ? dead.id : Number(insertMv.run(r.object_type, r.anchor, now).lastInsertRowid);
          link.run(id, r.connector, r.anchor);
          touchGroups.run(r.connector, r.dn_norm);
        }
      }
    })();
  }

  private applyDeletes(step: StepHandle): void {
    const rows = this.db.prepare<[], CsRow>("SELECT * FROM cs_objects WHERE pending IS NOT NULL AND pending = 'delete'").all();
    const remove = this.db.prepare('DELETE FROM cs_objects WHERE connector = ? AND anchor = ?');
    const removeMembers = this.db.prepare('DELETE FROM cs_members WHERE connector = ? AND group_anchor = ?');
    const others = this.db.prepare<[number], { n: number }>('SELECT COUNT(*) AS n FROM cs_objects WHERE mv_id = ?');
    const tombstone = this.db.prepare('UPDATE mv_objects SET deleted = 1, pending_export = 1, updated_at = ? WHERE id = ?');
    const groupsOf = this.db.prepare('UPDATE mv_objects SET pending_export = 1 WHERE id IN (SELECT group_id FROM mv_members WHERE member_id = ?)');
    const dropMemberships = this.db.prepare('DELETE FROM mv_members WHERE member_id = ? OR group_id = ?');
    const touchGroups = this.touchGroupsStatement();
    const now = new Date().toISOString();
    this.db.transaction(() => {
      for (const r of rows) {
        remove.run(r.connector, r.anchor);
        removeMembers.run(r.connector, r.anchor);
        touchGroups.run(r.connector, r.dn_norm);
        if (r.mv_id == null) continue;
        if ((others.get(r.mv_id)?.n ?? 0) > 0) {
          step.counts.updates++;
          continue;
        }
        groupsOf.run(r.mv_id);
        dropMemberships.run(r.mv_id, r.mv_id);
        tombstone.run(now, r.mv_id);
        step.counts.deletes++;
      }
    })();
  }

  private applyChanges(type: ObjectType, step: StepHandle): void {
    const select = this.db.prepare<[string, number], CsRow>(
      "SELECT * FROM cs_objects WHERE pending IS NOT NULL AND pending IN ('add', 'update') AND object_type = ? LIMIT ?",
    );
    const getMv = this.db.prepare<[number], { attrs: string; deleted: number }>('SELECT attrs, deleted FROM mv_objects WHERE id = ?');
    const setMv = this.db.prepare('UPDATE mv_objects SET attrs = ?, deleted = 0, pending_export = 1, updated_at = ? WHERE id = ?');
    const clear = this.db.prepare('UPDATE cs_objects SET pending = NULL WHERE connector = ? AND anchor = ?');
    const memberIds = this.db.prepare<[string, string], { mv_id: number }>(
      // CROSS JOIN keeps SQLite from scanning the whole connector space per group: walk the
      // group's member rows, then look each member up by DN.
      `SELECT DISTINCT cs.mv_id AS mv_id FROM cs_members m
       CROSS JOIN cs_objects cs INDEXED BY cs_objects_dn ON cs.connector = m.connector AND cs.dn_norm = m.member_dn
       WHERE m.connector = ? AND m.group_anchor = ? AND cs.mv_id IS NOT NULL`,
    );
    const currentMembers = this.db.prepare<[number], { member_id: number }>('SELECT member_id FROM mv_members WHERE group_id = ? ORDER BY member_id');
    const deleteMembers = this.db.prepare('DELETE FROM mv_members WHERE group_id = ?');
    const addMember = this.db.prepare('INSERT OR IGNORE INTO mv_members (group_id, member_id) VALUES (?, ?)');
    const flag = this.db.prepare('UPDATE mv_objects SET pending_export = 1 WHERE id = ?');

    for (;;) {
      const rows = select.all(type, CHUNK);
      if (rows.length === 0) return;
      const now = new Date().toISOString();
      this.db.transaction(() => {
        for (const r of rows) {
          clear.run(r.connector, r.anchor);
          const mvId = r.mv_id!;
          const source: SourceObject = { anchor: r.anchor, objectType: r.object_type, dn: r.dn, attributes: JSON.parse(r.attrs) };
          const attrs: MvAttrs = inboundFlow(this.kinds.get(r.connector) ?? 'ldap', source);
          const before = getMv.get(mvId);
          const wasNew = !before || before.attrs === '{}';
          let changed = false;
          const serialized = stableStringify(attrs);
          if (!before || before.attrs !== serialized || before.deleted) {
            setMv.run(serialized, now, mvId);
            changed = true;
          }
          if (type === 'group') {
            const next = memberIds.all(r.connector, r.anchor).map((m) => m.mv_id).filter((id) => id !== mvId).sort((a, b) => a - b);
            const prev = currentMembers.all(mvId).map((m) => m.member_id);
            if (next.join(',') !== prev.join(',')) {
              deleteMembers.run(mvId);
              for (const id of next) addMember.run(mvId, id);
              flag.run(mvId);
              changed = true;
            }
          }
          if (wasNew) step.counts.adds++;
          else if (changed) step.counts.updates++;
          else step.counts.unchanged++;
        }
      })();
    }
  }
}
