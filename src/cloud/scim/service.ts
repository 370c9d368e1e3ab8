/**
 * SCIM resource operations, independent of HTTP: routes and Bulk both call these. Everything is
 * synchronous (better-sqlite3), so a read-check-write runs inside one transaction with no interleaving.
 */
import { randomUUID } from 'node:crypto';
import type { Database } from '../../store/database.js';
import { badRequest, notFound, ScimError } from './errors.js';
import { compileFilter, filterToSql, sortSql } from './filter.js';
import { DEFAULT_LIMITS, type ScimLimits } from './limits.js';
import { applyPatch, parsePatchRequest } from './patch.js';
import { parseProjection, project, returnsAttribute, type Projection } from './projection.js';
import { ScimRepository, type MemberRow, type MemberType, type StoredResource } from './repository.js';
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
    readonly db: Database,
    readonly limits: ScimLimits = DEFAULT_LIMITS,
    private readonly now: () => string = () => new Date().toISOString(),
  ) {
    this.repo = new ScimRepository(db);
  }

  kindOf(name: 'User' | 'Group'): ResourceKind {
    return name === 'User' ? USERS : GROUPS;
  }

  /**
   * A write transaction. IMMEDIATE: another connection (the main thread's, when this service runs in
   * the SCIM worker) may commit between a deferred transaction's first read and its first write,
   * and SQLite then fails the write at once (SQLITE_BUSY_SNAPSHOT) instead of waiting. Inside an
   * open transaction it just runs: the caller owns atomicity there (Bulk wraps each operation in a
   * savepoint), and a savepoint per call was a fair part of a Bulk create's cost.
   */
  transaction<T>(fn: () => T): T {
    return this.db.inTransaction ? fn() : this.db.transaction(fn).immediate();
  }

  /** A savepoint inside the open transaction: what `fn` wrote is undone if it throws. */
  savepoint<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  // ---- single resources ----------------------------------------------------------------------

  get(kind: ResourceKind, id: string, withMembers = true): Loaded {
    const r = this.repo.get(kind, id);
    if (!r) throw notFound(`${kind.type.name} ${id} not found`);
    return kind === GROUPS && withMembers ? { ...r, members: this.repo.members(id) } : r;
  }

  create(kind: ResourceKind, body: unknown): Loaded {
    const doc = normalizeResource(kind.type, body);
    return this.transaction(() => {
      const id = randomUUID();
      const now = this.now();
      if (kind !== GROUPS) return this.repo.insert(kind, id, doc, now);
      const { doc: rest, members } = splitMembers(doc);
      const resolved = this.resolveMembers(id, members, new Map());
      const stored = this.repo.insert(kind, id, rest, now);
      this.repo.addMembers(id, resolved);
      return { ...stored, members: this.repo.members(id) };
    });
  }

  replace(kind: ResourceKind, id: string, body: unknown, ifMatch?: string): Loaded {
    const doc = normalizeResource(kind.type, body);
    return this.transaction(() => this.write(kind, this.current(kind, id, ifMatch), doc));
  }

  patch(kind: ResourceKind, id: string, body: unknown, ifMatch?: string): Loaded {
    const ops = parsePatchRequest(body, this.limits.maxPatchOperations);
    // The patch is worked out on a snapshot, outside the write lock (a 10,000-operation PATCH is CPU
    // work that other writers need not wait for); the write checks the version it started from, so
    // a change in between is a 412, never lost.
    const snapshot = () => {
      const cur = this.current(kind, id, ifMatch);
      return { current: cur, before: kind === GROUPS ? { ...cur.doc, members: this.repo.members(id).map(({ value, type }) => ({ value, type })) } : cur.doc };
    };
    const { current, before } = this.db.inTransaction ? snapshot() : this.db.transaction(snapshot)();
    const patched = applyPatch(kind.type, before, ops);
    // The result is validated like a PUT body: required attributes, types, e-mail format.
    const doc = normalizeResource(kind.type, { schemas: [kind.type.schema.id], ...patched });
    return this.transaction(() => this.write(kind, current, doc));
  }

  delete(kind: ResourceKind, id: string, ifMatch?: string): void {
    this.transaction(() => {
      this.current(kind, id, ifMatch);
      // A deleted user or group leaves every group it was a member of.
      const groups = this.repo.removeFromAllGroups(id);
      this.repo.touch(GROUPS, groups, this.now());
      this.repo.delete(kind, id);
    });
  }

  /** Loads the resource and checks If-Match. */
  private current(kind: ResourceKind, id: string, ifMatch?: string): StoredResource {
    const cur = this.repo.get(kind, id);
    if (!cur) throw notFound(`${kind.type.name} ${id} not found`);
    if (ifMatch !== undefined && !etagMatches(ifMatch, cur.version)) {
      throw new ScimError(412, undefined, `Precondition Failed: the ${kind.type.name} is at version ${etagOf(cur.version)}`);
    }
    return cur;
  }

  /** Stores a replacement document; nothing is written (and the version is kept) when nothing changed. */
  private write(kind: ResourceKind, current: StoredResource, doc: Doc): Loaded {
    const now = this.now();
    if (kind !== GROUPS) {
      return JSON.stringify(doc) === JSON.stringify(current.doc) ? current : this.repo.update(kind, current, doc, now);
    }
    const { doc: rest, members } = splitMembers(doc);
    const existing = this.repo.memberMap(current.id);
    const wanted = this.resolveMembers(current.id, members, existing);
    const added = [...wanted].filter(([id]) => !existing.has(id));
    const removed = [...existing.keys()].filter((id) => !wanted.has(id));
    const docChanged = JSON.stringify(rest) !== JSON.stringify(current.doc);
    if (!docChanged && added.length === 0 && removed.length === 0) return { ...current, members: this.repo.members(current.id) };
    this.repo.removeMembers(current.id, removed);
    this.repo.addMembers(current.id, added);
    const stored = this.repo.update(kind, current, rest, now);
    return { ...stored, members: this.repo.members(current.id) };
  }

  /** Checks that every member exists (and its declared type is right); returns id → type. */
  private resolveMembers(groupId: string, members: Record<string, unknown>[], existing: Map<string, MemberType>): Map<string, MemberType> {
    const out = new Map<string, MemberType>();
    for (const m of members) {
      const id = m.value as string;
      if (out.has(id)) continue;
      if (id === groupId) throw badRequest('invalidValue', 'members: a group cannot be a member of itself');
      const type = existing.get(id) ?? this.repo.resourceType(id);
      if (!type) throw badRequest('invalidValue', `members: no User or Group has id "${id}"`);
      if (m.type !== undefined && m.type !== type) throw badRequest('invalidValue', `members: "${id}" is a ${type}, not a ${String(m.type)}`);
      out.set(id, type);
    }
    return out;
  }

  // ---- list / search -------------------------------------------------------------------------

  list(kind: ResourceKind, q: ListQuery): { total: number; startIndex: number; items: Loaded[]; projection: Projection } {
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
    // Read only: a deferred transaction (one snapshot for count and page), which takes no write lock.
    return this.db.transaction(() => {
      const total = this.repo.count(kind, where);
      // A startIndex past the end (even 1e19, beyond SQLite's integers) is an empty page, not an error.
      const rows = count === 0 || startIndex > total ? [] : this.repo.page(kind, where, orderBy, descending, startIndex - 1, count);
      const items: Loaded[] =
        kind === GROUPS && returnsAttribute(projection, 'members') ? rows.map((r) => ({ ...r, members: this.repo.members(r.id) })) : rows;
      return { total, startIndex, items, projection };
    })();
  }

  // ---- rendering -----------------------------------------------------------------------------

  /** The SCIM representation of resources; `baseUrl` is the absolute SCIM base (…/scim/v2). */
  renderAll(kind: ResourceKind, items: Loaded[], baseUrl: string, projection: Projection = {}): Record<string, unknown>[] {
    const groups = kind === USERS && returnsAttribute(projection, 'groups') && items.length ? this.repo.groupsOf(items.map((i) => i.id)) : undefined;
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

  render(kind: ResourceKind, item: Loaded, baseUrl: string, projection: Projection = {}): Record<string, unknown> {
    return this.renderAll(kind, [item], baseUrl, projection)[0]!;
  }

  listResponse(kind: ResourceKind, q: ListQuery, baseUrl: string): Record<string, unknown> {
    const { total, startIndex, items, projection } = this.list(kind, q);
    return {
      schemas: [LIST_RESPONSE],
      totalResults: total,
      startIndex,
      itemsPerPage: items.length,
      Resources: this.renderAll(kind, items, baseUrl, projection),
    };
  }
}

function splitMembers(doc: Doc): { doc: Doc; members: Record<string, unknown>[] } {
  const { members, ...rest } = doc;
  return { doc: rest, members: Array.isArray(members) ? members.filter(isPlainObject) : [] };
}
