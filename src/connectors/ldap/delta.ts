/**
 * OpenLDAP delta import, by change sequence number (CSN) — see docs/delta-import.md.
 *
 * Watermark: `{"v":1,"type":"ldap","csn":"<contextCSN>","accesslog":"<base>"|absent,
 * "logHasCsn":bool}`: the highest contextCSN of the partition that holds baseDn, read BEFORE the
 * searches. A delta returns what changed strictly after it (`entryCSN>=csn` and not `=csn`):
 * - entries matching the user/group filters: in scope → upsert (whole object, as fullImport()
 *   maps it), elsewhere in the partition (moved out, renamed out) → delete;
 * - person/group entries changed that match neither filter any more → delete;
 * - other entries changed that have subordinates (a container renamed or moved with modrdn):
 *   their subtree is read again, as the entries beneath keep their entryCSN;
 * - deletions, only with `delta.accesslogBase` (the accesslog overlay): auditDelete entries whose
 *   entryCSN (the CSN of the delete itself, written by slapo-accesslog) is after the watermark →
 *   delete by reqEntryUUID. Without accesslog a deletion is only seen by the next full import.
 * A watermark above the current contextCSN (restored server), of another format, for another
 * accesslog setting, or whose accesslog entry was purged since → WATERMARK_INVALID.
 */
import type { Client, Entry } from 'ldapts';
import { mapLdapError } from '../../ldap/client.js';
import { containersToReread, deletesOf, scopedChanges, type DirectoryConnection } from '../../ldap/directory-connector.js';
import { getAttr, resolveScope, valuesOf } from '../../ldap/search.js';
import { decodeWatermark, encodeWatermark, findNamingContext, readEntry, watermarkInvalid } from '../../ldap/watermark.js';
import type { DeltaChange, DeltaImport } from '../types.js';
import { ldapAnchorOf, ldapEntryToObject, type LdapCfg } from './entry.js';


/** The optional delta settings (schema: `delta: { accesslogBase?: string }` on ldap connectors). */
export interface LdapDeltaSettings {
  /** Base of the accesslog database (slapo-accesslog `logdb`), e.g. "cn=accesslog": deletions are read there. */
  accesslogBase?: string | undefined;
  /** Without the accesslog: how often a full import runs to find deletions ("1d" by default). */
  fullImportInterval?: string | undefined;
}

export const DEFAULT_FULL_IMPORT_INTERVAL = '1d';

/** "30s", "15m", "12h", "1d" → milliseconds. */
export function durationMs(d: string): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(d);
  if (!m) throw new Error(`"${d}" is not a duration`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

export function ldapDeltaSettings(cfg: LdapCfg): LdapDeltaSettings {
  return (cfg as { delta?: LdapDeltaSettings }).delta ?? {};
}

/** OpenLDAP CSN: `YYYYmmddHHMMSS.uuuuuuZ#cccccc#sid#mmmmmm` (sorts as a string). */
export const CSN_RE = /^\d{14}\.\d{6}Z#[0-9a-f]{6}#[0-9a-f]{3}#[0-9a-f]{6}$/i;
/** Entries that may once have matched a user or group filter (to find those that no longer do). */
const LDAP_CANDIDATES = '(|(objectClass=person)(objectClass=posixAccount)(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))';

interface LdapState {
  csn: string;
  logHasCsn: boolean;
}

/** The highest contextCSN of the partition holding baseDn (and whether the accesslog holds that CSN). */
async function readLdapState(client: Client, cfg: LdapCfg, nc: string): Promise<LdapState> {
  const ctx = { url: cfg.url, connectorName: cfg.name };
  const e = await readEntry(client, nc, ['contextCSN'], ctx);
  const csns = valuesOf(e ? getAttr(e, 'contextCSN') : undefined).filter((c) => CSN_RE.test(c)).sort();
  const csn = csns[csns.length - 1];
  if (!csn) {
    throw watermarkInvalid(cfg.name, `${nc} has no contextCSN (OpenLDAP needs the syncprov overlay on the database, and slapadd -w for offline loads)`, { base: nc });
  }
  const log = ldapDeltaSettings(cfg).accesslogBase;
  return { csn, logHasCsn: log ? await logHas(client, cfg, log, csn) : false };
}

async function logHas(client: Client, cfg: LdapCfg, log: string, csn: string): Promise<boolean> {
  const filter = `(entryCSN=${csn})`;
  try {
    const r = await client.search(log, { scope: 'one', filter, attributes: ['1.1'], sizeLimit: 1 });
    return r.searchEntries.length > 0;
  } catch (err) {
    throw mapLdapError(err, { url: cfg.url, phase: 'search', base: log, filter, connectorName: cfg.name });
  }
}

function encode(cfg: LdapCfg, s: LdapState): string {
  const log = ldapDeltaSettings(cfg).accesslogBase;
  return encodeWatermark('ldap', { csn: s.csn, ...(log ? { accesslog: log, logHasCsn: s.logHasCsn } : {}) });
}

export function ldapCurrentWatermark(cfg: LdapCfg, dir: DirectoryConnection): Promise<string> {
  return dir.withConnection(async (client) => {
    const nc = await findNamingContext(client, cfg.baseDn, cfg.url, cfg.name);
    return encode(cfg, await readLdapState(client, cfg, nc));
  });
}

export function ldapDeltaImport(cfg: LdapCfg, dir: DirectoryConnection, raw: string): DeltaImport {
  const wm = decodeWatermark(raw, 'ldap', cfg.name, { csn: CSN_RE, accesslog: /^.{1,1000}$/, logHasCsn: 'boolean' }, ['accesslog', 'logHasCsn']);
  const log = ldapDeltaSettings(cfg).accesslogBase;
  if ((wm.accesslog ?? undefined) !== log) {
    throw watermarkInvalid(cfg.name, `it was taken with ${wm.accesslog ? `accesslog ${String(wm.accesslog)}` : 'no accesslog'}, the connector now uses ${log ? `accesslog ${log}` : 'none'}`);
  }
  const csn = wm.csn as string;

  return dir.deltaImport(async function* (client) {
    const nc = await findNamingContext(client, cfg.baseDn, cfg.url, cfg.name);
    const now = await readLdapState(client, cfg, nc);
    if (csn > now.csn) {
      throw watermarkInvalid(cfg.name, `its CSN ${csn} is after the server's contextCSN ${now.csn} (restored or reloaded server?)`, { base: nc });
    }
    if (log && wm.logHasCsn === true && !(await logHas(client, cfg, log, csn))) {
      throw watermarkInvalid(cfg.name, `the accesslog entry of CSN ${csn} is gone from ${log} (purged by logpurge?): deletions since may be lost`, { accesslog: log });
    }
    const after = `(entryCSN>=${csn})(!(entryCSN=${csn}))`;
    const whole = resolveScope({ baseDn: nc });
    const search = (base: string, filter: string, attributes: string[]): AsyncGenerator<Entry[]> =>
      dir.search(client, filter, attributes, { scope: base === nc ? whole : resolveScope({ baseDn: base }) });

    for (const { objectType, filter, attributes } of dir.kinds) {
      for await (const page of search(nc, `(&${filter}${after})`, attributes)) {
        const out = await scopedChanges(page, dir.scope, (e) => ldapEntryToObject(e, objectType, cfg.name), ldapAnchorOf);
        if (out.length) yield out;
      }
    }
    const neither = dir.kinds.map((k) => `(!${k.filter})`).join('');
    // Renamed or moved containers (modrdn of a subtree): the entries beneath get new DNs but keep
    // their entryCSN, so each such subtree is read again (in scope → upsert, moved out → delete).
    const changedContainers: string[] = [];
    for await (const page of search(nc, `(&${neither}${after})`, ['hasSubordinates'])) {
      for (const e of page) if (valuesOf(getAttr(e, 'hasSubordinates'))[0]?.toUpperCase() === 'TRUE') changedContainers.push(e.dn);
    }
    for (const container of containersToReread(changedContainers, nc)) {
      for (const { objectType, filter, attributes } of dir.kinds) {
        for await (const page of search(container, filter, attributes)) {
          const out = await scopedChanges(page, dir.scope, (e) => ldapEntryToObject(e, objectType, cfg.name), ldapAnchorOf);
          if (out.length) yield out;
        }
      }
    }
    for await (const page of search(nc, `(&${LDAP_CANDIDATES}${after}${neither})`, ['entryUUID'])) {
      const out = deletesOf(page, ldapAnchorOf);
      if (out.length) yield out;
    }
    if (log) {
      for await (const page of search(log, `(&(objectClass=auditDelete)(reqResult=0)${after})`, ['reqDN', 'reqEntryUUID'])) {
        const out: DeltaChange[] = [];
        for (const e of page) {
          const dn = valuesOf(getAttr(e, 'reqDN'))[0];
          const anchor = valuesOf(getAttr(e, 'reqEntryUUID'))[0];
          // only deletions inside the partition we sync (the log may serve several databases)
          if (!dn || !whole.contains(dn)) continue;
          out.push({ kind: 'delete', anchor: anchor ?? '', dn, gone: true });
        }
        if (out.length) yield out;
      }
    }
    return encode(cfg, now);
  });
}
