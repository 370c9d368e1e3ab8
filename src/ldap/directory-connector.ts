/**
 * What the AD and LDAP connectors share, so it is written once: the scope resolved once,
 * connections opened at use time (the secret is read on every connect), imports that run on a
 * connection of their own that close() can end, test() of every base, the user/group filters and
 * attributes, and the paged-search settings. Each connector keeps what differs between them:
 * attributes, anchors, entry mapping and watermarks.
 */
import type { Client, Control, Entry } from 'ldapts';
import type { LdapConnectorConfig } from '../config/schema.js';
import type { DeltaChange, DeltaImport, ImportStream, ObjectType, SecretResolver, SourceObject } from '../connectors/types.js';
import { connectLdap, type LdapConnection } from './client.js';
import { isNormalizedDnUnder, tryNormalizeDn } from './dn.js';
import { pagedSearch, readBase, resolveScope, type ResolvedScope } from './search.js';
import { watermarkInvalid } from './watermark.js';

/** One object type an import reads: the configured filter (or the kind's default) and its attributes. */
export interface ObjectKind {
  objectType: ObjectType;
  filter: string;
  attributes: string[];
  /** Request controls for this kind's searches (AD groups: the extended DN control). */
  controls?: () => Control[];
}

/** The per-kind defaults a directory connector is built from. */
export interface DirectoryKindSettings {
  userFilter: string;
  groupFilter: string;
  userAttributes: string[];
  groupAttributes: string[];
  /** Attributes ldapts must return as Buffers in every search (AD's GUIDs and SIDs). */
  explicitBufferAttributes?: string[] | undefined;
  /** Request controls for group searches. */
  groupControls?: () => Control[];
}

export interface DirectoryConnection {
  readonly scope: ResolvedScope;
  /** Users first, then groups (the order every import reads them in). */
  readonly kinds: ObjectKind[];
  open(): Promise<LdapConnection>;
  /** A paged search with the connector's URL, name, page size and buffer attributes; `scope` defaults to the connector's. */
  search(client: Client, filter: string, attributes: string[], opts?: { scope?: ResolvedScope; controls?: Control[] | undefined }): AsyncGenerator<Entry[]>;
  /** Runs `fn` on a fresh connection that is closed afterwards (not tracked: it does not outlive the call). */
  withConnection<R>(fn: (client: Client) => Promise<R>): Promise<R>;
  /** SourceConnector.test(): every base of the scope must be readable. */
  test(): Promise<void>;
  /** SourceConnector.fullImport(): each kind's pages, mapped by `toObjects`; empty pages are not yielded. */
  fullImport(toObjects: (client: Client, page: Entry[], objectType: ObjectType) => Promise<SourceObject[]> | SourceObject[]): ImportStream;
  /**
   * A DeltaImport whose pages run `changes` on a tracked connection; what `changes` returns is the
   * watermark, handed out only once the pages were read to the end.
   */
  deltaImport(changes: (client: Client) => AsyncGenerator<DeltaChange[], string>): DeltaImport;
  /** SourceConnector.close(): ends the connections of imports still running. Safe to call twice. */
  close(): Promise<void>;
}

export function createDirectoryConnection(cfg: LdapConnectorConfig, secret: SecretResolver, kind: DirectoryKindSettings): DirectoryConnection {
  const scope = resolveScope({ baseDn: cfg.baseDn, include: cfg.scope?.include, exclude: cfg.scope?.exclude });
  const open = (): Promise<LdapConnection> =>
    connectLdap({ url: cfg.url, bindDn: cfg.bindDn, tls: cfg.tls, timeoutMs: cfg.timeoutMs, connectorName: cfg.name }, secret);
  // connections of running imports, so close() can end an import the caller stopped reading
  const live = new Set<LdapConnection>();
  const kinds: ObjectKind[] = [
    { objectType: 'user', filter: cfg.userFilter ?? kind.userFilter, attributes: kind.userAttributes },
    { objectType: 'group', filter: cfg.groupFilter ?? kind.groupFilter, attributes: kind.groupAttributes, ...(kind.groupControls ? { controls: kind.groupControls } : {}) },
  ];

  // A generator, so the connection is opened on the first read and closed when the reader stops.
  async function* tracked<T>(body: (conn: LdapConnection) => AsyncGenerator<T, void>): AsyncGenerator<T, void> {
    const conn = await open();
    live.add(conn);
    try {
      yield* body(conn);
    } finally {
      live.delete(conn);
      await conn.close();
    }
  }

  const search: DirectoryConnection['search'] = (client, filter, attributes, opts = {}) =>
    pagedSearch(client, {
      url: cfg.url,
      connectorName: cfg.name,
      filter,
      attributes,
      explicitBufferAttributes: kind.explicitBufferAttributes,
      pageSize: cfg.pageSize,
      scope: opts.scope ?? scope,
      controls: opts.controls,
    });

  const withConnection = async <R>(fn: (client: Client) => Promise<R>): Promise<R> => {
    const conn = await open();
    try {
      return await fn(conn.client);
    } finally {
      await conn.close();
    }
  };

  return {
    scope,
    kinds,
    open,
    search,
    withConnection,
    test: () =>
      withConnection(async (client) => {
        await readBase(client, cfg.baseDn, cfg.url, cfg.name);
        for (const b of scope.bases) if (b !== cfg.baseDn) await readBase(client, b, cfg.url, cfg.name);
      }),
    fullImport: (toObjects) =>
      tracked(async function* ({ client }) {
        for (const { objectType, filter, attributes, controls } of kinds) {
          for await (const page of search(client, filter, attributes, { controls: controls?.() })) {
            const out = await toObjects(client, page, objectType);
            if (out.length) yield out;
          }
        }
      }),
    deltaImport(changes) {
      let next: string | undefined;
      return {
        // the watermark is set before the connection closes, as soon as the last page was read
        pages: tracked(async function* ({ client }) {
          next = yield* changes(client);
        }),
        watermark() {
          if (next === undefined) throw watermarkInvalid(cfg.name, 'watermark() was called before the delta pages were read to the end');
          return next;
        },
      };
    },
    async close() {
      const all = [...live];
      live.clear();
      await Promise.all(all.map((c) => c.close()));
    },
  };
}

/**
 * Containers (OUs) whose own change was seen by a delta, outermost first: renaming or moving a
 * container changes the DN of everything beneath it without touching those objects' change
 * numbers (AD's uSNChanged, OpenLDAP's entryCSN), so the delta re-reads each one's subtree. A
 * container under another one of the set is read with it. The naming context itself is left out.
 */
export function containersToReread(dns: string[], namingContext: string): string[] {
  const norm = dns.map((dn) => ({ dn, n: tryNormalizeDn(dn) })).filter((d): d is { dn: string; n: string } => d.n !== undefined);
  const nc = tryNormalizeDn(namingContext);
  const unique = new Map(norm.filter((d) => d.n !== nc).map((d) => [d.n, d.dn]));
  const all = [...unique.keys()];
  return all.filter((n) => !all.some((o) => o !== n && isNormalizedDnUnder(n, o))).map((n) => unique.get(n)!);
}

/** Deletes for the entries of `page` that have an anchor (entries without one cannot be matched anyway). */
export function deletesOf(page: Entry[], anchorOf: (e: Entry) => string | undefined): DeltaChange[] {
  const out: DeltaChange[] = [];
  for (const e of page) {
    const anchor = anchorOf(e);
    if (anchor) out.push({ kind: 'delete', anchor, dn: e.dn });
  }
  return out;
}

/**
 * Delta step 1 (docs/delta-import.md), the same for AD and LDAP: a changed entry that matches a
 * user/group filter is an upsert when in scope, a delete when elsewhere in the partition (moved or
 * renamed out of scope). Entries are mapped one at a time, in order.
 */
export async function scopedChanges(
  page: Entry[],
  scope: ResolvedScope,
  toObject: (e: Entry) => Promise<SourceObject> | SourceObject,
  anchorOf: (e: Entry) => string | undefined,
): Promise<DeltaChange[]> {
  const out: DeltaChange[] = [];
  for (const e of page) {
    if (scope.contains(e.dn)) out.push({ kind: 'upsert', object: await toObject(e) });
    else out.push(...deletesOf([e], anchorOf));
  }
  return out;
}
