/**
 * SQL for the SCIM layer. Each resource is one row: indexed columns (userName lower-cased and unique,
 * externalId unique, displayName, active, meta dates) plus the JSON document, so filters translate to
 * SQL and a list over 100k users never loads them into memory. Group membership is its own table:
 * deleting a user removes it from every group, and User.groups and member display names are derived.
 * The same SQL runs on SQLite and PostgreSQL (src/cloud/store/): the PostgreSQL schema defines the
 * few SQLite functions the filter translation uses (json_extract, json_each, instr, scim_lower).
 */
import type { Migration } from '../../store/database.js';
import { UniqueViolation, type Sql } from '../store/sql.js';
import type { SqliteStore } from '../store/sqlite.js';
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

/**
 * The same tables on PostgreSQL. `seq` orders rows as SQLite's rowid does (insertion order, for
 * stable pages); text columns compare bytewise (COLLATE "C"), as SQLite's do.
 */
export const scimPgMigrations: Migration[] = [
  {
    id: 'scim/001',
    sql: `
CREATE TABLE scim_users (
  seq             BIGSERIAL,
  id              TEXT COLLATE "C" PRIMARY KEY,
  version         INTEGER NOT NULL,
  created         TEXT COLLATE "C" NOT NULL,
  last_modified   TEXT COLLATE "C" NOT NULL,
  external_id     TEXT COLLATE "C" UNIQUE,
  user_name       TEXT COLLATE "C" NOT NULL,
  user_name_lc    TEXT COLLATE "C" NOT NULL UNIQUE,
  display_name    TEXT COLLATE "C",
  display_name_lc TEXT COLLATE "C",
  active          INTEGER,
  doc             TEXT NOT NULL
);
CREATE INDEX scim_users_seq ON scim_users(seq);
CREATE INDEX scim_users_last_modified ON scim_users(last_modified);
CREATE INDEX scim_users_display_name_lc ON scim_users(display_name_lc);
CREATE TABLE scim_groups (
  seq             BIGSERIAL,
  id              TEXT COLLATE "C" PRIMARY KEY,
  version         INTEGER NOT NULL,
  created         TEXT COLLATE "C" NOT NULL,
  last_modified   TEXT COLLATE "C" NOT NULL,
  external_id     TEXT COLLATE "C" UNIQUE,
  display_name    TEXT COLLATE "C" NOT NULL,
  display_name_lc TEXT COLLATE "C" NOT NULL,
  doc             TEXT NOT NULL
);
CREATE INDEX scim_groups_seq ON scim_groups(seq);
CREATE INDEX scim_groups_last_modified ON scim_groups(last_modified);
CREATE INDEX scim_groups_display_name_lc ON scim_groups(display_name_lc);
CREATE TABLE scim_group_members (
  group_id    TEXT COLLATE "C" NOT NULL REFERENCES scim_groups(id) ON DELETE CASCADE,
  member_id   TEXT COLLATE "C" NOT NULL,
  member_type TEXT NOT NULL CHECK (member_type IN ('User', 'Group')),
  PRIMARY KEY (group_id, member_id)
);
CREATE INDEX scim_group_members_member ON scim_group_members(member_id);

-- SQLite's JSON functions as the filter translation (filter.ts) uses them: a path '$."a"."b"';
-- scalars come back as SQL text ('1'/'0' for booleans, as SQLite's integers compare), objects and
-- arrays as JSON text.
CREATE FUNCTION scim_json_path(p TEXT) RETURNS TEXT[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
  $$ SELECT coalesce(array_agg(m[1] ORDER BY n), '{}') FROM regexp_matches(p, '"([^"]*)"', 'g') WITH ORDINALITY AS t(m, n) $$;
CREATE FUNCTION scim_json_scalar(v JSONB) RETURNS TEXT LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
  $$ SELECT CASE jsonb_typeof(v) WHEN 'string' THEN v #>> '{}' WHEN 'boolean' THEN (CASE WHEN v = 'true'::jsonb THEN '1' ELSE '0' END)
       WHEN 'null' THEN NULL ELSE v::text END $$;
CREATE FUNCTION json_extract(doc TEXT, p TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
  $$ SELECT scim_json_scalar(doc::jsonb #> scim_json_path(p)) $$;
CREATE FUNCTION json_each(doc TEXT, p TEXT) RETURNS TABLE (value TEXT) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
  $$ SELECT scim_json_scalar(e) FROM jsonb_array_elements(CASE jsonb_typeof(doc::jsonb #> scim_json_path(p)) WHEN 'array'
       THEN doc::jsonb #> scim_json_path(p) ELSE '[]'::jsonb END) AS e $$;
CREATE FUNCTION instr(s TEXT, sub TEXT) RETURNS INTEGER LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT strpos(s, sub) $$;
-- Full Unicode lower-casing, as JavaScript's toLowerCase (the database runs with a UTF-8 ctype).
CREATE FUNCTION scim_lower(s TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT lower(s) $$;
`,
  },
];

export interface StoredResource {
  id: string;
  version: number;
  created: string;
  lastModified: string;
  doc: Doc;
  /** `doc` as stored (JSON text), when known: a write compares against it instead of serialising `doc` again. */
  json?: string;
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
  json: r.doc,
});

/** INSERT and UPDATE text per resource kind, built once (the statement cache is keyed by it). */
const statements = new WeakMap<ResourceKind, { insert: string; update: string }>();
function sqlOf(kind: ResourceKind): { insert: string; update: string } {
  let s = statements.get(kind);
  if (!s) {
    const cols = kind.columns.join(', ');
    const marks = kind.columns.map(() => '?').join(', ');
    const sets = kind.columns.map((c) => `${c} = ?`).join(', ');
    s = {
      insert: `INSERT INTO ${kind.table} (id, version, created, last_modified, doc, ${cols}) VALUES (?, 1, ?, ?, ?, ${marks})`,
      update: `UPDATE ${kind.table} SET version = version + 1, last_modified = ?, doc = ?, ${sets} WHERE id = ? AND version = ?`,
    };
    statements.set(kind, s);
  }
  return s;
}

/** Stays well below SQLite's host-parameter limit (32766) and PostgreSQL's (65535). */
const CHUNK = 500;

function chunks<T>(items: T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** A broken unique index as SCIM's 409 uniqueness, naming the attribute and value as the client sent it; other errors as they are. */
function conflictOf(kind: ResourceKind, err: unknown, columnValues: unknown[]): unknown {
  if (!(err instanceof UniqueViolation)) return err;
  const col = err.column !== undefined && err.column in kind.uniqueColumns ? err.column : undefined;
  const attr = col ? kind.uniqueColumns[col] : 'id';
  let value = col ? columnValues[kind.columns.indexOf(col)] : undefined;
  // The lower-cased column is what collided; report the attribute as the client sent it.
  if (col === 'user_name_lc') value = columnValues[kind.columns.indexOf('user_name')];
  return new ScimError(409, 'uniqueness', `${attr}${typeof value === 'string' ? ` "${value}"` : ''} is already used by another ${kind.type.name}`);
}

/**
 * ScimRepository.insert, synchronously, on a SQLite connection inside its open transaction (a
 * Bulk slice): the same row and the same 409, without the async layers.
 */
export function insertNow(store: SqliteStore, kind: ResourceKind, id: string, doc: Doc, now: string): StoredResource {
  const values = kind.columnValues(doc);
  const json = JSON.stringify(doc);
  try {
    store.runNow(sqlOf(kind).insert, [id, now, now, json, ...values]);
  } catch (err) {
    throw conflictOf(kind, err, values);
  }
  return { id, version: 1, created: now, lastModified: now, doc, json };
}

/** ScimRepository.get, synchronously (SQLite, inside the caller's transaction). */
export function getNow(store: SqliteStore, kind: ResourceKind, id: string): StoredResource | undefined {
  const row = store.getNow<Row>(`SELECT id, version, created, last_modified, doc FROM ${kind.table} WHERE id = ?`, [id]);
  return row && toStored(row);
}

/** ScimRepository.update, synchronously (SQLite, inside the caller's transaction). */
export function updateNow(store: SqliteStore, kind: ResourceKind, current: StoredResource, doc: Doc, now: string, json: string): StoredResource {
  const values = kind.columnValues(doc);
  let changes: number;
  try {
    changes = store.runNow(sqlOf(kind).update, [now, json, ...values, current.id, current.version]);
  } catch (err) {
    throw conflictOf(kind, err, values);
  }
  if (changes === 0) throw new ScimError(412, undefined, 'Precondition Failed: the resource was changed concurrently');
  return { ...current, version: current.version + 1, lastModified: now, doc, json };
}

const TOUCH_GROUPS_OF = 'UPDATE scim_groups SET version = version + 1, last_modified = ? WHERE id IN (SELECT group_id FROM scim_group_members WHERE member_id = ?)';
const TOUCH_USER_MEMBERS =
  "UPDATE scim_users SET version = version + 1, last_modified = ? WHERE id IN (SELECT member_id FROM scim_group_members WHERE group_id = ? AND member_type = 'User')";

/** ScimRepository.touchGroupsOf, synchronously (SQLite, inside the caller's transaction). */
export function touchGroupsOfNow(store: SqliteStore, memberId: string, now: string): void {
  store.runNow(TOUCH_GROUPS_OF, [now, memberId]);
}

/** ScimRepository.touchUserMembers, synchronously (SQLite, inside the caller's transaction). */
export function touchUserMembersNow(store: SqliteStore, groupId: string, now: string): void {
  store.runNow(TOUCH_USER_MEMBERS, [now, groupId]);
}

/**
 * `fn` in a savepoint of the open transaction on `store`, synchronously: released when it returns,
 * rolled back to (and released) when it throws, and the error rethrown. SqliteStore's nested
 * transaction without its awaits, for a fast-path write of several statements.
 */
export function savepointNow<T>(store: SqliteStore, fn: () => T): T {
  store.runNow('SAVEPOINT scim_now');
  try {
    const out = fn();
    store.runNow('RELEASE scim_now');
    return out;
  } catch (err) {
    // SQLite ends the whole transaction on a few errors (a full disk), and the savepoint with it.
    if (store.db.inTransaction) {
      try {
        store.runNow('ROLLBACK TO scim_now');
        store.runNow('RELEASE scim_now');
      } catch {
        // The connection cannot roll back now: the first error is the one to report.
      }
    }
    throw err;
  }
}

/**
 * The type of each of `ids` that exists: ScimRepository.resourceType for all of them in one
 * statement (SQLite, inside the caller's transaction). A User is looked for first, as there.
 */
export function resourceTypesNow(store: SqliteStore, ids: string[]): Map<string, MemberType> {
  const rows = store.allNow<{ id: string; t: MemberType | null }>(
    "SELECT j.value AS id, CASE WHEN EXISTS (SELECT 1 FROM scim_users WHERE id = j.value) THEN 'User' WHEN EXISTS (SELECT 1 FROM scim_groups WHERE id = j.value) THEN 'Group' END AS t FROM json_each(?) AS j",
    [JSON.stringify(ids)],
  );
  const out = new Map<string, MemberType>();
  for (const r of rows) if (r.t !== null) out.set(r.id, r.t);
  return out;
}

/**
 * Member rows per INSERT in addMembersNow: 3 parameters each, far below SQLite's 32,766, and at most
 * this many statement texts (one per chunk length) in the store's cache.
 */
export const MEMBER_INSERT_ROWS = 64;
const memberInserts: string[] = [];

/** ScimRepository.addMembers, synchronously, MEMBER_INSERT_ROWS rows per statement (SQLite, inside the caller's transaction). */
export function addMembersNow(store: SqliteStore, groupId: string, members: Map<string, MemberType>): void {
  const all = [...members];
  for (let i = 0; i < all.length; i += MEMBER_INSERT_ROWS) {
    const part = all.slice(i, i + MEMBER_INSERT_ROWS);
    const params: string[] = [];
    for (const [id, type] of part) params.push(groupId, id, type);
    const sql = (memberInserts[part.length] ??=
      `INSERT INTO scim_group_members (group_id, member_id, member_type) VALUES ${Array(part.length).fill('(?, ?, ?)').join(', ')} ON CONFLICT DO NOTHING`);
    store.runNow(sql, params);
  }
}

/** The SCIM tables, through one connection or transaction (`q`). */
export class ScimRepository {
  constructor(readonly q: Sql) {}

  /** `forUpdate` locks the row until the transaction ends (PostgreSQL): concurrent writers of one resource queue. */
  async get(kind: ResourceKind, id: string, forUpdate = false): Promise<StoredResource | undefined> {
    const row = await this.q.get<Row>(`SELECT id, version, created, last_modified, doc FROM ${kind.table} WHERE id = ?${forUpdate ? this.q.forUpdate : ''}`, [id]);
    return row && toStored(row);
  }

  /** `json` is `doc` serialised, when the caller has it already. */
  async insert(kind: ResourceKind, id: string, doc: Doc, now: string, json = JSON.stringify(doc)): Promise<StoredResource> {
    const values = kind.columnValues(doc);
    await this.write(kind, sqlOf(kind).insert, [id, now, now, json, ...values], values);
    return { id, version: 1, created: now, lastModified: now, doc, json };
  }

  /** Writes a new document if the stored version is still `version`; returns the new version. */
  async update(kind: ResourceKind, current: StoredResource, doc: Doc, now: string, json = JSON.stringify(doc)): Promise<StoredResource> {
    const values = kind.columnValues(doc);
    const changes = await this.write(kind, sqlOf(kind).update, [now, json, ...values, current.id, current.version], values);
    if (changes === 0) throw new ScimError(412, undefined, 'Precondition Failed: the resource was changed concurrently');
    return { ...current, version: current.version + 1, lastModified: now, doc, json };
  }

  /**
   * Bumps version and lastModified of resources whose derived attributes changed (a group whose
   * member left or was renamed, a user who joined or left a group), so their ETag changes too.
   */
  async touch(kind: ResourceKind, ids: Iterable<string>, now: string): Promise<void> {
    for (const part of chunks([...ids])) {
      await this.q.run(`UPDATE ${kind.table} SET version = version + 1, last_modified = ? WHERE id IN (${part.map(() => '?').join(',')})`, [now, ...part]);
    }
  }

  /** touch() of the groups `memberId` is a member of (their members[].display shows it). */
  async touchGroupsOf(memberId: string, now: string): Promise<void> {
    await this.q.run(TOUCH_GROUPS_OF, [now, memberId]);
  }

  /** touch() of the users who are members of `groupId` (their groups[] shows it). */
  async touchUserMembers(groupId: string, now: string): Promise<void> {
    await this.q.run(TOUCH_USER_MEMBERS, [now, groupId]);
  }

  async delete(kind: ResourceKind, id: string): Promise<boolean> {
    return (await this.q.run(`DELETE FROM ${kind.table} WHERE id = ?`, [id])) > 0;
  }

  private async write(kind: ResourceKind, sql: string, params: unknown[], columnValues: unknown[]): Promise<number> {
    try {
      return await this.q.run(sql, params);
    } catch (err) {
      throw conflictOf(kind, err, columnValues);
    }
  }

  // ---- list / search -------------------------------------------------------------------------

  async count(kind: ResourceKind, where: SqlFilter | null): Promise<number> {
    const row = await this.q.get<{ n: number }>(`SELECT count(*) AS n FROM ${kind.table} AS r${where ? ` WHERE ${where.sql}` : ''}`, where?.params ?? []);
    return Number(row?.n ?? 0);
  }

  async page(kind: ResourceKind, where: SqlFilter | null, orderBy: string | null, descending: boolean, offset: number, limit: number): Promise<StoredResource[]> {
    const dir = descending ? 'DESC' : 'ASC';
    // Insertion order (SQLite's rowid, PostgreSQL's seq) keeps pages stable.
    const seq = this.q.dialect === 'sqlite' ? 'r.rowid' : 'r.seq';
    // Unassigned values sort last ascending and first descending.
    const order = orderBy ? `(${orderBy}) IS NULL ${descending ? 'DESC' : 'ASC'}, ${orderBy} ${dir}, ${seq} ${dir}` : seq;
    const sql = `SELECT r.id, r.version, r.created, r.last_modified, r.doc FROM ${kind.table} AS r${where ? ` WHERE ${where.sql}` : ''} ORDER BY ${order} LIMIT ? OFFSET ?`;
    return (await this.q.all<Row>(sql, [...(where?.params ?? []), limit, offset])).map(toStored);
  }

  // ---- membership ----------------------------------------------------------------------------

  async members(groupId: string): Promise<MemberRow[]> {
    return this.q.all<MemberRow>(
      `SELECT gm.member_id AS value, gm.member_type AS type, ${MEMBER_DISPLAY_SQL} AS display FROM scim_group_members AS gm ${MEMBER_JOINS} WHERE gm.group_id = ? ORDER BY gm.member_id`,
      [groupId],
    );
  }

  async memberMap(groupId: string): Promise<Map<string, MemberType>> {
    const rows = await this.q.all<{ member_id: string; member_type: MemberType }>('SELECT member_id, member_type FROM scim_group_members WHERE group_id = ?', [groupId]);
    return new Map(rows.map((r) => [r.member_id, r.member_type]));
  }

  /** The type of the resource with this id, if any (a member must exist). */
  async resourceType(id: string): Promise<MemberType | undefined> {
    const row = await this.q.get<{ t: MemberType }>(`SELECT 'User' AS t FROM scim_users WHERE id = ? UNION ALL SELECT 'Group' AS t FROM scim_groups WHERE id = ?`, [id, id]);
    return row?.t;
  }

  async addMembers(groupId: string, members: Iterable<[string, MemberType]>): Promise<void> {
    for (const [id, type] of members) {
      await this.q.run('INSERT INTO scim_group_members (group_id, member_id, member_type) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', [groupId, id, type]);
    }
  }

  async removeMembers(groupId: string, ids: Iterable<string>): Promise<void> {
    for (const id of ids) await this.q.run('DELETE FROM scim_group_members WHERE group_id = ? AND member_id = ?', [groupId, id]);
  }

  /** Removes `memberId` from every group; returns the groups that changed. */
  async removeFromAllGroups(memberId: string): Promise<string[]> {
    const groups = (await this.q.all<{ group_id: string }>('SELECT group_id FROM scim_group_members WHERE member_id = ?', [memberId])).map((r) => r.group_id);
    if (groups.length) await this.q.run('DELETE FROM scim_group_members WHERE member_id = ?', [memberId]);
    return groups;
  }

  /** Direct groups of each user, for the readOnly User.groups attribute. */
  async groupsOf(userIds: string[]): Promise<Map<string, { value: string; display: string }[]>> {
    const out = new Map<string, { value: string; display: string }[]>();
    for (const part of chunks(userIds)) {
      const rows = await this.q.all<{ member_id: string; id: string; display_name: string }>(
        `SELECT gm.member_id, g.id, g.display_name FROM scim_group_members AS gm JOIN scim_groups AS g ON g.id = gm.group_id WHERE gm.member_id IN (${part.map(() => '?').join(',')}) ORDER BY g.display_name_lc, g.id`,
        part,
      );
      for (const { member_id: member, id: value, display_name: display } of rows) {
        let l = out.get(member);
        if (!l) out.set(member, (l = []));
        l.push({ value, display });
      }
    }
    return out;
  }
}

// ---- look-ups for other parts of the cloud directory (sign-in) -----------------------------------

export async function findUserForSignIn(q: Sql, userName: string): Promise<{ id: string; userName: string; active: boolean; externalId: string | null } | undefined> {
  const row = await q.get<{ id: string; user_name: string; active: number | null; external_id: string | null }>(
    'SELECT id, user_name, active, external_id FROM scim_users WHERE user_name_lc = ?',
    [userName.toLowerCase()],
  );
  if (!row) return undefined;
  // An unassigned `active` counts as active: only an explicit false disables sign-in.
  return { id: row.id, userName: row.user_name, active: row.active !== 0, externalId: row.external_id };
}

export async function findUserIdsByExternalIds(q: Sql, externalIds: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const unique = [...new Set(externalIds)];
  for (const part of chunks(unique)) {
    const rows = await q.all<{ external_id: string; id: string }>(`SELECT external_id, id FROM scim_users WHERE external_id IN (${part.map(() => '?').join(',')})`, part);
    for (const r of rows) out.set(r.external_id, r.id);
  }
  return out;
}
