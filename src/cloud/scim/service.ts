/**
 * SCIM resource operations, independent of HTTP: routes and Bulk both call these, on SQLite or
 * PostgreSQL (src/cloud/store/). Every write is a read-check-write in one transaction whose read
 * locks the row (PostgreSQL; a SQLite write transaction is exclusive anyway), so concurrent writers
 * of one resource queue instead of losing each other's changes; an If-Match checks the version read
 * under that lock (412). Uniqueness is the unique indexes' (409). Each operation takes an optional
 * `q`: given a transaction (a Bulk slice), it runs in a savepoint of it.
 */
import type { Sql, TransactionOptions } from '../store/sql.js';
import type { SqliteStore } from '../store/sqlite.js';
import { badRequest, notFound, ScimError } from './errors.js';
import { compileFilter, filterToSql, sortSql } from './filter.js';
import { DEFAULT_LIMITS, type ScimLimits } from './limits.js';
import { applyPatch, parsePatchRequest } from './patch.js';
import { newResourceId } from './ids.js';
import { parseProjection, project, returnsAttribute, type Projection } from './projection.js';
import { addMembersNow, getNow, insertNow, resourceTypesNow, savepointNow, ScimRepository, touchGroupsOfNow, touchUserMembersNow, updateNow, type MemberRow, type MemberType, type StoredResource } from './repository.js';
import { GROUPS } from './resources/groups.js';
import type { ResourceKind } from './resources/kind.js';
import { USERS } from './resources/users.js';
import { LIST_RESPONSE, resolveAttrPath } from './schema.js';
import { isPlainObject, normalizeResource, type Doc } from './validate.js';

export { DEFAULT_LIMITS, type ScimLimits };
const DEFAULT_COUNT = 100;

/** A stored resource together with what lives outside its document. */
export interface Loaded extends StoredResource {
  members?: MemberRow[];
}

export interface ListQuery {
  filter?: unknown;
  startIndex?: unknown;
  count?: unknown;
  sortBy?: unknown;
  sortOrder?: unknown;
  attributes?: unknown;
  excludedAttributes?: unknown;
}

export const etagOf = (version: number): string => `W/"${version}"`;

/** If-Match / If-None-Match against a weak ETag: SCIM compares versions, so W/ is ignored. */
export function etagMatches(header: string, version: number): boolean {
  const want = `"${version}"`;
  return header
    .split(',')
    .map((t) => t.trim())
    .some((t) => t === '*' || t.replace(/^W\//, '') === want);
}

function intParam(v: unknown, name: string): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n)) throw badRequest('invalidValue', `"${name}" must be an integer`);
  return n;
}

export class ScimService {
  readonly repo: ScimRepository;

  constructor(
    readonly sql: Sql,
    readonly limits: ScimLimits = DEFAULT_LIMITS,
    private readonly now: () => string = () => new Date().toISOString(),
  ) {
    this.repo = new ScimRepository(sql);
  }

  kindOf(name: 'User' | 'Group'): ResourceKind {
    return name === 'User' ? USERS : GROUPS;
  }

  /**
   * A transaction (a savepoint of `q` when `q` is one); the callback gets a repository bound to it.
   * On SQLite a write transaction is IMMEDIATE (store/sql.ts): the SCIM worker's connection and the
   * main thread's both write cloud.db.
   */
  transaction<T>(fn: (repo: ScimRepository, tx: Sql) => Promise<T>, q: Sql = this.sql, options?: TransactionOptions): Promise<T> {
    return q.transaction((tx) => fn(new ScimRepository(tx), tx), options);
  }

  // ---- single resources ----------------------------------------------------------------------

  async get(kind: ResourceKind, id: string, withMembers = true): Promise<Loaded> {
    const r = await this.repo.get(kind, id);
    if (!r) throw notFound(`${kind.type.name} ${id} not found`);
    return kind === GROUPS && withMembers ? { ...r, members: await this.repo.members(id) } : r;
  }

  async create(kind: ResourceKind, body: unknown, q?: Sql): Promise<Loaded> {
    const doc = normalizeResource(kind.type, body);
    // A User is one INSERT, atomic on its own: no transaction (on PostgreSQL one round trip, not three).
    if (kind !== GROUPS) return new ScimRepository(q ?? this.sql).insert(kind, newResourceId(), doc, this.now());
    return this.transaction(async (repo) => {
      const id = newResourceId();
      const now = this.now();
      const { doc: rest, members } = splitMembers(doc);
      const resolved = await this.resolveMembers(repo, id, members, new Map());
      const stored = await repo.insert(kind, id, rest, now);
      await repo.addMembers(id, resolved);
      if (resolved.size) await repo.touchUserMembers(id, now); // their groups[] shows it now
      return { ...stored, members: await repo.members(id) };
    }, q);
  }

  /**
   * create() of a User, synchronously, inside a Bulk slice's open transaction on `store` (SQLite):
   * the same validation, id, row and 409. Bulk's common case, without five async layers per user;
   * test/cloud/scim/bulk-fast-path.test.ts holds it to the general path on random requests.
   */
  createUserNow(body: unknown, store: SqliteStore): Loaded {
    return insertNow(store, USERS, newResourceId(), normalizeResource(USERS.type, body), this.now());
  }

  /**
   * create() of a Group, synchronously, inside a Bulk slice's open transaction on `store` (SQLite):
   * the same validation, member checks in the same order (so the same first error), rows, 409 and
   * touch of the member users, but the members looked up in one query and inserted many rows per
   * statement. Its writes share a savepoint, so a failure leaves none of them. The result has no
   * `members` (Bulk answers with id and version only), which spares reading them back.
   * test/cloud/scim/bulk-fast-path.test.ts holds it to the general path on random requests.
   */
  createGroupNow(body: unknown, store: SqliteStore): Loaded {
    const doc = normalizeResource(GROUPS.type, body);
    const id = newResourceId();
    const now = this.now();
    const { doc: rest, members } = splitMembers(doc);
    const resolved = resolveMembersNow(store, id, members);
    return savepointNow(store, () => {
      const stored = insertNow(store, GROUPS, id, rest, now);
      addMembersNow(store, id, resolved);
      if (resolved.size) touchUserMembersNow(store, id, now); // their groups[] shows it now
      return stored;
    });
  }

  /** replace() of a User, synchronously, inside a Bulk slice's open transaction on `store` (as createUserNow). */
  replaceUserNow(id: string, body: unknown, ifMatch: string | undefined, store: SqliteStore): Loaded {
    const doc = normalizeResource(USERS.type, body);
    return this.writeUserNow(store, this.currentNow(store, id, ifMatch), doc);
  }

  /** patch() of a User, synchronously, inside a Bulk slice's open transaction on `store` (as createUserNow). */
  patchUserNow(id: string, body: unknown, ifMatch: string | undefined, store: SqliteStore): Loaded {
    const ops = parsePatchRequest(body, this.limits.maxPatchOperations);
    const cur = this.currentNow(store, id, ifMatch);
    return this.writeUserNow(store, cur, normalizeResource(USERS.type, { schemas: [USERS.type.schema.id], ...applyPatch(USERS.type, cur.doc, ops) }));
  }

  private currentNow(store: SqliteStore, id: string, ifMatch: string | undefined): StoredResource {
    const cur = getNow(store, USERS, id);
    return checkCurrent(USERS, id, cur, ifMatch);
  }

  private writeUserNow(store: SqliteStore, current: StoredResource, doc: Doc): Loaded {
    const json = JSON.stringify(doc);
    if (json === (current.json ?? JSON.stringify(current.doc))) return current;
    const now = this.now();
    const stored = updateNow(store, USERS, current, doc, now, json);
    if (memberDisplay(doc) !== memberDisplay(current.doc)) touchGroupsOfNow(store, current.id, now);
    return stored;
  }

  async replace(kind: ResourceKind, id: string, body: unknown, ifMatch?: string, q?: Sql): Promise<Loaded> {
    const doc = normalizeResource(kind.type, body);
    return this.transaction(async (repo) => this.write(repo, kind, await this.current(repo, kind, id, ifMatch), doc), q);
  }

  async patch(kind: ResourceKind, id: string, body: unknown, ifMatch?: string, q?: Sql): Promise<Loaded> {
    const ops = parsePatchRequest(body, this.limits.maxPatchOperations);
    // The patch is worked out on a snapshot, outside the write lock (a 10,000-operation PATCH is CPU
    // work that other writers need not wait for). The write locks the resource and checks it is still
    // at that version; if another writer came first, the patch is worked out again on what it wrote
    // (under the lock, so concurrent PATCHes of one group each keep their members), unless If-Match
    // names the old version: then it is a 412. Inside a caller's transaction (Bulk) it is all one.
    // Members carry their display, so a path filter on it (`members[display eq "x"]`) selects as a
    // search does; display is readOnly, so the validation of the result drops it again.
    const before = async (repo: ScimRepository, cur: StoredResource): Promise<Doc> =>
      kind === GROUPS ? { ...cur.doc, members: (await repo.members(id)).map(memberElement) } : cur.doc;
    const work = (doc: Doc): Doc =>
      // The result is validated like a PUT body: required attributes, types, e-mail format.
      normalizeResource(kind.type, { schemas: [kind.type.schema.id], ...applyPatch(kind.type, doc, ops) });
    if (q) {
      return this.transaction(async (repo) => {
        const cur = await this.current(repo, kind, id, ifMatch);
        return this.write(repo, kind, cur, work(await before(repo, cur)));
      }, q);
    }
    const snap = await this.transaction(
      async (repo) => {
        const cur = await this.current(repo, kind, id, ifMatch, false);
        return { version: cur.version, doc: work(await before(repo, cur)) };
      },
      this.sql,
      { readOnly: true },
    );
    return this.transaction(async (repo) => {
      const locked = await this.current(repo, kind, id, ifMatch);
      return this.write(repo, kind, locked, locked.version === snap.version ? snap.doc : work(await before(repo, locked)));
    });
  }

  async delete(kind: ResourceKind, id: string, ifMatch?: string, q?: Sql): Promise<void> {
    await this.transaction(async (repo) => {
      await this.current(repo, kind, id, ifMatch);
      const now = this.now();
      // A deleted user or group leaves every group it was a member of; a deleted group's users lose it from groups[].
      const groups = await repo.removeFromAllGroups(id);
      await repo.touch(GROUPS, groups, now);
      if (kind === GROUPS) await repo.touchUserMembers(id, now);
      await repo.delete(kind, id);
    }, q);
  }

  /** Loads (and, unless `lock` is false, locks) the resource and checks If-Match. */
  private async current(repo: ScimRepository, kind: ResourceKind, id: string, ifMatch?: string, lock = true): Promise<StoredResource> {
    return checkCurrent(kind, id, await repo.get(kind, id, lock), ifMatch);
  }

  /** Stores a replacement document; nothing is written (and the version is kept) when nothing changed. */
  private async write(repo: ScimRepository, kind: ResourceKind, current: StoredResource, doc: Doc): Promise<Loaded> {
    const now = this.now();
    if (kind !== GROUPS) {
      const json = JSON.stringify(doc);
      if (json === (current.json ?? JSON.stringify(current.doc))) return current;
      const stored = await repo.update(kind, current, doc, now, json);
      if (memberDisplay(doc) !== memberDisplay(current.doc)) await repo.touchGroupsOf(current.id, now);
      return stored;
    }
    const { doc: rest, members } = splitMembers(doc);
    const existing = await repo.memberMap(current.id);
    const wanted = await this.resolveMembers(repo, current.id, members, existing);
    const added = [...wanted].filter(([id]) => !existing.has(id));
    const removed = [...existing.keys()].filter((id) => !wanted.has(id));
    const json = JSON.stringify(rest);
    const docChanged = json !== (current.json ?? JSON.stringify(current.doc));
    if (!docChanged && added.length === 0 && removed.length === 0) return { ...current, members: await repo.members(current.id) };
    await repo.removeMembers(current.id, removed);
    await repo.addMembers(current.id, added);
    const stored = await repo.update(kind, current, rest, now, json);
    // Others' derived attributes changed with it: the groups[] of users who joined or left (of
    // every member, when the group was renamed) and, on a rename, the members[].display of the
    // groups it is a member of. Their versions move too, so no If-None-Match answers a stale 304.
    const left = removed.filter((id) => existing.get(id) === 'User');
    if (rest.displayName !== current.doc.displayName) {
      await repo.touch(USERS, left, now);
      await repo.touchUserMembers(current.id, now);
      await repo.touchGroupsOf(current.id, now);
    } else {
      await repo.touch(USERS, [...left, ...added.filter(([, type]) => type === 'User').map(([id]) => id)], now);
    }
    return { ...stored, members: await repo.members(current.id) };
  }

  /** Checks that every member exists (and its declared type is right); returns id → type. */
  private async resolveMembers(repo: ScimRepository, groupId: string, members: Record<string, unknown>[], existing: Map<string, MemberType>): Promise<Map<string, MemberType>> {
    const out = new Map<string, MemberType>();
    for (const m of members) {
      const id = m.value as string;
      if (out.has(id)) continue;
      notItself(groupId, id);
      out.set(id, memberOfType(m, id, existing.get(id) ?? (await repo.resourceType(id))));
    }
    return out;
  }

  // ---- list / search -------------------------------------------------------------------------

  async list(kind: ResourceKind, q: ListQuery): Promise<{ total: number; startIndex: number; items: Loaded[]; projection: Projection }> {
    const projection = parseProjection(kind.type, q.attributes, q.excludedAttributes);
    if (q.filter !== undefined && typeof q.filter !== 'string') throw badRequest('invalidFilter', '"filter" must be a string');
    const where = q.filter ? filterToSql(compileFilter(q.filter, { rt: kind.type }), kind.sql) : null;
    // RFC 7644 §3.4.2.4: startIndex < 1 means 1, a negative count means 0; pages are capped at maxResults.
    const startIndex = Math.max(1, intParam(q.startIndex, 'startIndex') ?? 1);
    const count = Math.min(this.limits.maxResults, Math.max(0, intParam(q.count, 'count') ?? DEFAULT_COUNT));
    let orderBy: string | null = null;
    let descending = false;
    if (q.sortBy !== undefined && q.sortBy !== '') {
      if (typeof q.sortBy !== 'string') throw badRequest('invalidValue', '"sortBy" must be an attribute name');
      orderBy = sortSql(resolveAttrPath(kind.type, q.sortBy, 'invalidValue'), kind.sql);
      if (q.sortOrder !== undefined && q.sortOrder !== '') {
        const so = String(q.sortOrder).toLowerCase();
        if (so !== 'ascending' && so !== 'descending') throw badRequest('invalidValue', '"sortOrder" must be "ascending" or "descending"');
        descending = so === 'descending';
      }
    }
    // Read only: one snapshot for count and page; on SQLite a deferred transaction, which takes no write lock.
    return this.transaction(async (repo) => {
      const total = await repo.count(kind, where);
      // A startIndex past the end (even 1e19, beyond SQLite's integers) is an empty page, not an error.
      const rows = count === 0 || startIndex > total ? [] : await repo.page(kind, where, orderBy, descending, startIndex - 1, count);
      const items: Loaded[] = [];
      const withMembers = kind === GROUPS && returnsAttribute(projection, 'members');
      for (const r of rows) items.push(withMembers ? { ...r, members: await repo.members(r.id) } : r);
      return { total, startIndex, items, projection };
    }, this.sql, { readOnly: true });
  }

  // ---- rendering -----------------------------------------------------------------------------

  /** The SCIM representation of resources; `baseUrl` is the absolute SCIM base (…/scim/v2). */
  async renderAll(kind: ResourceKind, items: Loaded[], baseUrl: string, projection: Projection = {}, q: Sql = this.sql): Promise<Record<string, unknown>[]> {
    const groups = kind === USERS && returnsAttribute(projection, 'groups') && items.length ? await new ScimRepository(q).groupsOf(items.map((i) => i.id)) : undefined;
    return items.map((item) => {
      const rt = kind.type;
      const out: Record<string, unknown> = {
        schemas: [rt.schema.id, ...rt.extensions.map((e) => e.id).filter((u) => item.doc[u] !== undefined)],
        id: item.id,
        ...item.doc,
      };
      const userGroups = groups?.get(item.id);
      if (userGroups) {
        out.groups = userGroups.map((g) => ({ value: g.value, $ref: `${baseUrl}/Groups/${g.value}`, display: g.display, type: 'direct' }));
      }
      if (item.members && item.members.length) {
        out.members = item.members.map((m) => {
          const el: Record<string, unknown> = { value: m.value, $ref: `${baseUrl}/${m.type}s/${m.value}`, type: m.type };
          if (m.display !== null) el.display = m.display;
          return el;
        });
      }
      out.meta = {
        resourceType: rt.name,
        created: item.created,
        lastModified: item.lastModified,
        location: `${baseUrl}${rt.endpoint}/${item.id}`,
        version: etagOf(item.version),
      };
      return project(out, projection);
    });
  }

  async render(kind: ResourceKind, item: Loaded, baseUrl: string, projection: Projection = {}, q: Sql = this.sql): Promise<Record<string, unknown>> {
    return (await this.renderAll(kind, [item], baseUrl, projection, q))[0]!;
  }

  async listResponse(kind: ResourceKind, q: ListQuery, baseUrl: string): Promise<Record<string, unknown>> {
    const { total, startIndex, items, projection } = await this.list(kind, q);
    return {
      schemas: [LIST_RESPONSE],
      totalResults: total,
      startIndex,
      itemsPerPage: items.length,
      Resources: await this.renderAll(kind, items, baseUrl, projection),
    };
  }
}

/** The resource a write starts from: 404 when there is none, 412 when If-Match names another version. */
function checkCurrent(kind: ResourceKind, id: string, cur: StoredResource | undefined, ifMatch: string | undefined): StoredResource {
  if (!cur) throw notFound(`${kind.type.name} ${id} not found`);
  if (ifMatch !== undefined && !etagMatches(ifMatch, cur.version)) {
    throw new ScimError(412, undefined, `Precondition Failed: the ${kind.type.name} is at version ${etagOf(cur.version)}`);
  }
  return cur;
}

/** What a group's members[].display shows for a user (MEMBER_DISPLAY_SQL): a change moves its groups' versions. */
const memberDisplay = (doc: Doc): unknown => doc.displayName ?? doc.userName;

/** A member as a PATCH sees it: what a GET shows, less the $ref. */
function memberElement({ value, type, display }: MemberRow): Record<string, unknown> {
  return display === null ? { value, type } : { value, type, display };
}

/** A group's member checks, in the order both resolvers run them: not the group itself… */
function notItself(groupId: string, id: string): void {
  if (id === groupId) throw badRequest('invalidValue', 'members: a group cannot be a member of itself');
}

/** …then a User or Group with that id, of the type the member says if it says one. */
function memberOfType(m: Record<string, unknown>, id: string, type: MemberType | undefined): MemberType {
  if (!type) throw badRequest('invalidValue', `members: no User or Group has id "${id}"`);
  if (m.type !== undefined && m.type !== type) throw badRequest('invalidValue', `members: "${id}" is a ${type}, not a ${String(m.type)}`);
  return type;
}

/**
 * ScimService.resolveMembers for a new group (no existing members), synchronously, with every
 * member looked up in one query: the same checks in the same order, so the same first error.
 */
function resolveMembersNow(store: SqliteStore, groupId: string, members: Record<string, unknown>[]): Map<string, MemberType> {
  const out = new Map<string, MemberType>();
  if (!members.length) return out;
  const types = resourceTypesNow(store, members.map((m) => m.value as string));
  for (const m of members) {
    const id = m.value as string;
    if (out.has(id)) continue;
    notItself(groupId, id);
    out.set(id, memberOfType(m, id, types.get(id)));
  }
  return out;
}

function splitMembers(doc: Doc): { doc: Doc; members: Record<string, unknown>[] } {
  const { members, ...rest } = doc;
  return { doc: rest, members: Array.isArray(members) ? members.filter(isPlainObject) : [] };
}
