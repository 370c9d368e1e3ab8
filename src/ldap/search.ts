/**
 * Streaming, scoped, paged searches shared by the LDAP and AD connectors.
 */
import type { Client, Control, Entry } from 'ldapts';
import { isNormalizedDnUnder, normalizeDn, tryNormalizeDn } from './dn.js';
import { mapLdapError } from './client.js';
import { LdapSearchError } from './errors.js';
import { parseExtendedDn } from './controls.js';

export interface ScopeSettings {
  baseDn: string;
  include?: string[] | undefined;
  exclude?: string[] | undefined;
}

/** Scope resolved once: the search bases (nested includes merged) and normalised exclusions. */
export interface ResolvedScope {
  bases: string[];
  excludes: string[];
  /** Whether `dn` (as returned by the server) is in scope: under a base and under no exclusion. */
  contains(dn: string): boolean;
}

export function resolveScope(s: ScopeSettings): ResolvedScope {
  const raw = s.include && s.include.length ? s.include : [s.baseDn];
  const norm = raw.map((b) => ({ dn: b, n: normalizeDn(b) }));
  // drop includes that lie under another include (they would be read twice)
  const bases = norm.filter((b, i) => !norm.some((o, j) => j !== i && o.n !== b.n && isNormalizedDnUnder(b.n, o.n)) && norm.findIndex((o) => o.n === b.n) === i);
  const baseNorms = bases.map((b) => b.n);
  const excludes = (s.exclude ?? []).map((e) => normalizeDn(e));
  return {
    bases: bases.map((b) => b.dn),
    excludes,
    contains(dn: string): boolean {
      const n = tryNormalizeDn(dn);
      if (n === undefined) return false;
      if (!baseNorms.some((b) => isNormalizedDnUnder(n, b))) return false;
      return !excludes.some((e) => isNormalizedDnUnder(n, e));
    },
  };
}

export interface PagedSearchOptions {
  url: string;
  connectorName?: string | undefined;
  filter: string;
  attributes: string[];
  explicitBufferAttributes?: string[] | undefined;
  pageSize: number;
  scope: ResolvedScope;
  /** Extra request controls (e.g. Show Deleted), sent with the paged-results control. */
  controls?: Control[] | undefined;
}

/**
 * Runs the filter under every scope base with the paged-results control and yields each page of
 * in-scope entries as it arrives (never the whole result set).
 */
export async function* pagedSearch(client: Client, o: PagedSearchOptions): AsyncGenerator<Entry[]> {
  const needFilter = o.scope.excludes.length > 0;
  for (const base of o.scope.bases) {
    const ctx = { url: o.url, phase: 'search' as const, base, filter: o.filter, connectorName: o.connectorName };
    let it: AsyncGenerator<{ searchEntries: Entry[] }>;
    try {
      it = client.searchPaginated(base, {
        scope: 'sub',
        filter: o.filter,
        attributes: o.attributes,
        explicitBufferAttributes: o.explicitBufferAttributes ?? [],
        paged: { pageSize: o.pageSize },
      }, o.controls);
    } catch (err) {
      throw mapLdapError(err, ctx);
    }
    for (;;) {
      let r: IteratorResult<{ searchEntries: Entry[] }>;
      try {
        r = await it.next();
      } catch (err) {
        throw mapLdapError(err, ctx);
      }
      if (r.done) break;
      // With the extended DN control the entry's own DN comes as `<GUID=...>;...;CN=...` too.
      for (const e of r.value.searchEntries) if (e.dn.startsWith('<')) e.dn = parseExtendedDn(e.dn).dn;
      const entries = needFilter ? r.value.searchEntries.filter((e) => o.scope.contains(e.dn)) : r.value.searchEntries;
      if (entries.length) yield entries;
    }
  }
}

/** ldapts value(s) -> string[] (Buffers as base64; empty arrays stay empty). */
export function valuesOf(v: Entry[string] | undefined): string[] {
  if (v === undefined) return [];
  const arr = Array.isArray(v) ? v : [v];
  return arr.map((x) => (Buffer.isBuffer(x) ? x.toString('base64') : String(x)));
}

/** First raw Buffer of an attribute returned as binary. */
export function bufferOf(v: Entry[string] | undefined): Buffer | undefined {
  if (v === undefined) return undefined;
  const first = Array.isArray(v) ? v[0] : v;
  if (first === undefined) return undefined;
  return Buffer.isBuffer(first) ? first : undefined;
}

/** Gets an attribute case-insensitively from an ldapts entry. */
export function getAttr(entry: Entry, name: string): Entry[string] | undefined {
  if (name in entry) return entry[name];
  const lc = name.toLowerCase();
  for (const k of Object.keys(entry)) if (k.toLowerCase() === lc) return entry[k];
  return undefined;
}

/** Reads the base entry (scope base) — used by test() to prove the base DN exists and is readable. */
export async function readBase(client: Client, base: string, url: string, connectorName?: string): Promise<void> {
  try {
    const r = await client.search(base, { scope: 'base', filter: '(objectClass=*)', attributes: ['1.1'] });
    if (r.searchEntries.length === 0) {
      throw new LdapSearchError(`${connectorName ? `connector "${connectorName}": ` : ''}the base DN "${base}" is not readable`, base, '(objectClass=*)', 'unreadable-base', {
        hint: 'Check baseDn and scope.include, and that the bind account may read them.',
        details: { url, base },
      });
    }
  } catch (err) {
    throw mapLdapError(err, { url, phase: 'search', base, filter: '(objectClass=*)', connectorName });
  }
}
