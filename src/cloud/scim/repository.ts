/**
 * SQL for the SCIM layer. Each resource is one row: indexed columns (userName lower-cased and unique,
 * externalId unique, displayName, active, meta dates) plus the JSON document, so filters translate to
 * SQL and a list over 100k users never loads them into memory. Group membership is its own table:
 * deleting a user removes it from every group, and User.groups and member display names are derived.
 */
import type { Statement } from 'better-sqlite3';
import type { Database, Migration } from '../../store/database.js';
import { ScimError } from './errors.js';
import type { SqlFilter } from './filter.js';
import { MEMBER_DISPLAY_SQL, MEMBER_JOINS } from './resources/groups.js';
import type { ResourceKind } from './resources/kind.js';
import type { Doc } from './validate.js';

export const scimMigrations: Migration[] = [
  {
    id: 'scim/001',
    sql: `
CREATE TABLE scim_users (
  id              TEXT PRIMARY KEY,
  version         INTEGER NOT NULL,
  created         TEXT NOT NULL,
  last_modified   TEXT NOT NULL,
  external_id     TEXT UNIQUE,
  user_name       TEXT NOT NULL,
  user_name_lc    TEXT NOT NULL UNIQUE,
  display_name    TEXT,
  display_name_lc TEXT,
  active          INTEGER,
  doc             TEXT NOT NULL
);
CREATE INDEX scim_users_last_modified ON scim_users(last_modified);
CREATE INDEX scim_users_display_name_lc ON scim_users(display_name_lc);
CREATE TABLE scim_groups (
  id              TEXT PRIMARY KEY,
  version         INTEGER NOT NULL,
  created         TEXT NOT NULL,
  last_modified   TEXT NOT NULL,
  external_id     TEXT UNIQUE,
  display_name    TEXT NOT NULL,
  display_name_lc TEXT NOT NULL,
  doc             TEXT NOT NULL
);
CREATE INDEX scim_groups_last_modified ON scim_groups(last_modified);
CREATE INDEX scim_groups_display_name_lc ON scim_groups(display_name_lc);
CREATE TABLE scim_group_members (
  group_id    TEXT NOT NULL REFERENCES scim_groups(id) ON DELETE CASCADE,
  member_id   TEXT NOT NULL,
  member_type TEXT NOT NULL CHECK (member_type IN ('User', 'Group')),
  PRIMARY KEY (group_id, member_id)
) WITHOUT ROWID;
CREATE INDEX scim_group_members_member ON scim_group_members(member_id);
`,
  },
];

export interface StoredResource {
  id: string;
  version: number;
  created: string;
  lastModified: string;
  doc: Doc;
}

export type MemberType = 'User' | 'Group';

export interface MemberRow {
  value: string;
  type: MemberType;
  display: string | null;
}

interface Row {
  id: string;
  version: number;
  created: string;
  last_modified: string;
  doc: string;
}

const toStored = (r: Row): StoredResource => ({
  id: r.id,
  version: r.version,
  created: r.created,
  lastModified: r.last_modified,
  doc: JSON.parse(r.doc) as Doc,
});

const MAX_CACHED_STATEMENTS = 256;
/** SQLite's default host-parameter limit is 32766; stay well below it. */
const CHUNK = 500;

function chunks<T>(items: T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export class ScimRepository {
  private readonly statements = new Map<string, Statement>();

  constructor(readonly db: Database) {
    // SQLite's lower() folds ASCII only; case-insensitive filters need full Unicode folding.
    db.function('scim_lower', { deterministic: true }, (s: unknown) => (typeof s === 'string' ? s.toLowerCase() : s));
  }

  stmt(sql: string): Statement {
    let s = this.statements.get(sql);
    if (!s) {
      // Filters make the SQL text vary; keep the cache bounded.
      if (this.statements.size >= MAX_CACHED_STATEMENTS) this.statements.clear();
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  get(kind: ResourceKind, id: string): StoredResource | undefined {
    const row = this.stmt(`SELECT id, version, created, last_modified, doc FROM ${kind.table} WHERE id = ?`).get(id) as Row | undefined;
    return row && toStored(row);
  }

  insert(kind: ResourceKind, id: string, doc: Doc, now: string): StoredResource {
    const cols = kind.columns.join(', ');
    const marks = kind.columns.map(() => '?').join(', ');
    const values = kind.columnValues(doc);
    this.run(kind, `INSERT INTO ${kind.table} (id, version, created, last_modified, doc, ${cols}) VALUES (?, 1, ?, ?, ?, ${marks})`, [id, now, now, JSON.stringify(doc), ...values], values);
    return { id, version: 1, created: now, lastModified: now, doc };
  }

  /** Writes a new document if the stored version is still `version`; returns the new version. */
  update(kind: ResourceKind, current: StoredResource, doc: Doc, now: string): StoredResource {
    const sets = kind.columns.map((c) => `${c} = ?`).join(', ');
    const values = kind.columnValues(doc);
    const info = this.run(
      kind,
      `UPDATE ${kind.table} SET version = version + 1, last_modified = ?, doc = ?, ${sets} WHERE id = ? AND version = ?`,
      [now, JSON.stringify(doc), ...values, current.id, current.version],
      values,
    );
    if (info.changes === 0) throw new ScimError(412, undefined, 'Precondition Failed: the resource was changed concurrently');
    return { ...current, version: current.version + 1, lastModified: now, doc };
  }

  /** Bumps version and lastModified (a group whose membership changed). */
  touch(kind: ResourceKind, ids: Iterable<string>, now: string): void {
    const s = this.stmt(`UPDATE ${kind.table} SET version = version + 1, last_modified = ? WHERE id = ?`);
    for (const id of ids) s.run(now, id);
  }

  delete(kind: ResourceKind, id: string): boolean {
    return this.stmt(`DELETE FROM ${kind.table} WHERE id = ?`).run(id).changes > 0;
  }

  private run(kind: ResourceKind, sql: string, params: unknown[], columnValues: unknown[]): { changes: number } {
    try {
      return this.stmt(sql).run(...params);
    } catch (err) {
      const e = err as { code?: string; message?: string };
      if (e.code === 'SQLITE_CONSTRAINT_UNIQUE' || e.code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
        const col = Object.keys(kind.uniqueColumns).find((c) => e.message?.includes(`${kind.table}.${c}`));
        const attr = col ? kind.uniqueColumns[col] : 'id';
        let value = col ? columnValues[kind.columns.indexOf(col)] : undefined;
        // The lower-cased column is what collided; report the attribute as the client sent it.
        if (col === 'user_name_lc') value = columnValues[kind.columns.indexOf('user_name')];
        throw new ScimError(409, 'uniqueness', `${attr}${typeof value === 'string' ? ` "${value}"` : ''} is already used by another ${kind.type.name}`);
      }
      throw err;
    }
  }

  // ---- list / search -------------------------------------------------------------------------

  count(kind: ResourceKind, where: SqlFilter | null): number {
    return this.stmt(`SELECT count(*) FROM ${kind.table} AS r${where ? ` WHERE ${where.sql}` : ''}`)
      .pluck()
      .get(...(where?.params ?? [])) as number;
  }

  page(kind: ResourceKind, where: SqlFilter | null, orderBy: string | null, descending: boolean, offset: number, limit: number): StoredResource[] {
    const dir = descending ? 'DESC' : 'ASC';
    // Unassigned values sort last ascending and first descending; rowid keeps pages stable.
    const order = orderBy ? `(${orderBy}) IS NULL ${descending ? 'DESC' : 'ASC'}, ${orderBy} ${dir}, r.rowid ${dir}` : 'r.rowid';
    const sql = `SELECT r.id, r.version, r.created, r.last_modified, r.doc FROM ${kind.table} AS r${where ? ` WHERE ${where.sql}` : ''} ORDER BY ${order} LIMIT ? OFFSET ?`;
    return (this.stmt(sql).all(...(where?.params ?? []), limit, offset) as Row[]).map(toStored);
  }

  // ---- membership ----------------------------------------------------------------------------

  members(groupId: string): MemberRow[] {
    return this.stmt(
      `SELECT gm.member_id AS value, gm.member_type AS type, ${MEMBER_DISPLAY_SQL} AS display FROM scim_group_members AS gm ${MEMBER_JOINS} WHERE gm.group_id = ? ORDER BY gm.member_id`,
    ).all(groupId) as MemberRow[];
  }

  memberMap(groupId: string): Map<string, MemberType> {
    const rows = this.stmt('SELECT member_id, member_type FROM scim_group_members WHERE group_id = ?').raw().all(groupId) as [string, MemberType][];
    return new Map(rows);
  }

  /** The type of the resource with this id, if any (a member must exist). */
  resourceType(id: string): MemberType | undefined {
    return this.stmt(`SELECT 'User' FROM scim_users WHERE id = ? UNION ALL SELECT 'Group' FROM scim_groups WHERE id = ?`).pluck().get(id, id) as
      | MemberType
      | undefined;
  }

  addMembers(groupId: string, members: Iterable<[string, MemberType]>): void {
    const s = this.stmt('INSERT OR IGNORE INTO scim_group_members (group_id, member_id, member_type) VALUES (?, ?, ?)');
    for (const [id, type] of members) s.run(groupId, id, type);
  }

  removeMembers(groupId: string, ids: Iterable<string>): void {
    const s = this.stmt('DELETE FROM scim_group_members WHERE group_id = ? AND member_id = ?');
    for (const id of ids) s.run(groupId, id);
  }

  /** Removes `memberId` from every group; returns the groups that changed. */
  removeFromAllGroups(memberId: string): string[] {
    const groups = this.stmt('SELECT group_id FROM scim_group_members WHERE member_id = ?').pluck().all(memberId) as string[];
    if (groups.length) this.stmt('DELETE FROM scim_group_members WHERE member_id = ?').run(memberId);
    return groups;
  }

  /** Direct groups of each user, for the readOnly User.groups attribute. */
  groupsOf(userIds: string[]): Map<string, { value: string; display: string }[]> {
    const out = new Map<string, { value: string; display: string }[]>();
    for (const part of chunks(userIds)) {
      const rows = this.stmt(
        `SELECT gm.member_id, g.id, g.display_name FROM scim_group_members AS gm JOIN scim_groups AS g ON g.id = gm.group_id WHERE gm.member_id IN (${part.map(() => '?').join(',')}) ORDER BY g.display_name_lc, g.id`,
      )
        .raw()
        .all(...part) as [string, string, string][];
      for (const [member, value, display] of rows) {
        let l = out.get(member);
        if (!l) out.set(member, (l = []));
        l.push({ value, display });
      }
    }
    return out;
  }
}

// ---- look-ups for other parts of the cloud directory (sign-in) -----------------------------------

export function findUserForSignIn(db: Database, userName: string): { id: string; userName: string; active: boolean; externalId: string | null } | undefined {
  const row = db.prepare('SELECT id, user_name, active, external_id FROM scim_users WHERE user_name_lc = ?').get(userName.toLowerCase()) as
    | { id: string; user_name: string; active: number | null; external_id: string | null }
    | undefined;
  if (!row) return undefined;
  // An unassigned `active` counts as active: only an explicit false disables sign-in.
  return { id: row.id, userName: row.user_name, active: row.active !== 0, externalId: row.external_id };
}

export function findUserIdsByExternalIds(db: Database, externalIds: string[]): Map<string, string> {
  const out = new Map<string, string>();
  const unique = [...new Set(externalIds)];
  for (const part of chunks(unique)) {
    const rows = db
      .prepare(`SELECT external_id, id FROM scim_users WHERE external_id IN (${part.map(() => '?').join(',')})`)
      .raw()
      .all(...part) as [string, string][];
    for (const [ext, id] of rows) out.set(ext, id);
  }
  return out;
}
