/**
 * Active Directory delta import, by update sequence number (USN) — see docs/delta-import.md.
 *
 * Watermark: `{"v":1,"type":"ad","usn":"<highestCommittedUSN>","dsa":"<dsServiceName>",
 * "invocationId":"<guid>","at":"<ISO time>"}`, read from the rootDSE BEFORE the searches.
 * USNs are local to one DC (and to one restore of it): a watermark from another DC, from a DC that
 * was restored (new invocationId, or a USN above the current highest), or older than the
 * tombstone lifetime (deletions may have been purged) is WATERMARK_INVALID.
 *
 * What a delta sees, over the WHOLE naming context (so moves out of scope are seen):
 * - users/groups matching the filters with uSNChanged > usn: in scope → upsert (whole object,
 *   as fullImport() maps it; group members with every range), out of scope → delete;
 * - users/groups/contacts changed that no longer match either filter → delete;
 * - containers (OUs) changed since: their subtree is read again, as renaming or moving a container
 *   moves everything beneath it without changing those objects' uSNChanged;
 * - tombstones (Show Deleted control, isDeleted=TRUE) changed since → delete (objectGUID is kept).
 */
import type { Client, Control, Entry } from 'ldapts';
import { ShowDeletedControl } from '../../ldap/controls.js';
import { containersToReread, deletesOf, scopedChanges, type DirectoryConnection } from '../../ldap/directory-connector.js';
import { guidToImmutableId, guidToString } from '../../ldap/guid.js';
import { bufferOf, getAttr, resolveScope, valuesOf } from '../../ldap/search.js';
import { decodeWatermark, encodeWatermark, findNamingContext, readEntry, watermarkInvalid } from '../../ldap/watermark.js';
import type { DeltaChange, DeltaImport } from '../types.js';
import { adEntryToCompleteObject, isComputerOrKrbtgt, type AdCfg } from './entry.js';


/** Objects that may once have matched a user or group filter (used to find those that no longer do). */
const AD_CANDIDATES = '(&(|(objectClass=user)(objectClass=group)(objectClass=contact))(!(objectClass=computer)))';
/** Containers whose rename or move moves the objects beneath them (the domain head cannot move). */
const AD_CONTAINERS = '(|(objectClass=organizationalUnit)(objectClass=container))';
const DEFAULT_TOMBSTONE_LIFETIME_DAYS = 180;
const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The anchor of an entry read with objectGUID (undefined when it has none). */
function adAnchorOf(e: Entry): string | undefined {
  const g = bufferOf(getAttr(e, 'objectGUID'));
  return g && g.length === 16 ? guidToImmutableId(g) : undefined;
}

export interface AdDcState {
  usn: bigint;
  dsa: string;
  invocationId: string;
}

/** highestCommittedUSN, dsServiceName and the DSA's invocationId of the DC we are connected to. */
export async function readAdDcState(client: Client, cfg: AdCfg): Promise<AdDcState> {
  const ctx = { url: cfg.url, connectorName: cfg.name };
  const root = await readEntry(client, '', ['highestCommittedUSN', 'dsServiceName'], ctx);
  const usn = valuesOf(root ? getAttr(root, 'highestCommittedUSN') : undefined)[0];
  const dsa = valuesOf(root ? getAttr(root, 'dsServiceName') : undefined)[0];
  if (!usn || !/^\d+$/.test(usn) || !dsa) {
    throw watermarkInvalid(cfg.name, 'the server publishes no highestCommittedUSN/dsServiceName in its rootDSE (is it an Active Directory DC?)');
  }
  const ntds = await readEntry(client, dsa, ['invocationId'], ctx, { explicitBufferAttributes: ['invocationId', 'invocationid'] });
  const inv = bufferOf(ntds ? getAttr(ntds, 'invocationId') : undefined);
  if (!inv || inv.length !== 16) throw watermarkInvalid(cfg.name, `cannot read the invocationId of ${dsa}`);
  return { usn: BigInt(usn), dsa, invocationId: guidToString(inv) };
}

export function adWatermark(s: AdDcState, at = new Date()): string {
  return encodeWatermark('ad', { usn: s.usn.toString(), dsa: s.dsa, invocationId: s.invocationId, at: at.toISOString() });
}

async function tombstoneLifetimeDays(client: Client, cfg: AdCfg): Promise<number> {
  const ctx = { url: cfg.url, connectorName: cfg.name };
  const root = await readEntry(client, '', ['configurationNamingContext'], ctx);
  const conf = valuesOf(root ? getAttr(root, 'configurationNamingContext') : undefined)[0];
  if (!conf) return DEFAULT_TOMBSTONE_LIFETIME_DAYS;
  const ds = await readEntry(client, `CN=Directory Service,CN=Windows NT,CN=Services,${conf}`, ['tombstoneLifetime'], ctx).catch(() => undefined);
  const days = Number(valuesOf(ds ? getAttr(ds, 'tombstoneLifetime') : undefined)[0]);
  return Number.isFinite(days) && days > 0 ? days : DEFAULT_TOMBSTONE_LIFETIME_DAYS;
}

/** `CN=x\0ADEL:<guid>,CN=Deleted Objects,...` + lastKnownParent → the DN the object had (best effort). */
export function tombstoneOriginalDn(dn: string, lastKnownParent: string | undefined): string | undefined {
  const m = /^([^,]*?)(?:\\0A|\n)DEL:[0-9a-f-]+,/i.exec(dn);
  if (!m || !lastKnownParent) return undefined;
  return `${m[1]},${lastKnownParent}`;
}

export function adDeltaImport(cfg: AdCfg, dir: DirectoryConnection, raw: string): DeltaImport {
  const wm = decodeWatermark(raw, 'ad', cfg.name, { usn: /^\d{1,20}$/, dsa: /^.{1,1000}$/, invocationId: GUID_RE, at: /^\d{4}-\d\d-\d\dT[\d:.]+Z$/ });
  const from = BigInt(wm.usn as string) + 1n;

  return dir.deltaImport(async function* (client) {
    const now = await readAdDcState(client, cfg);
    if (now.dsa.toLowerCase() !== (wm.dsa as string).toLowerCase()) {
      throw watermarkInvalid(cfg.name, `it was read from another domain controller (${wm.dsa as string}, now ${now.dsa})`, { watermarkDsa: wm.dsa, dsa: now.dsa });
    }
    if (now.invocationId !== wm.invocationId) {
      throw watermarkInvalid(cfg.name, 'the domain controller database was restored or reset since (its invocationId changed)', { dsa: now.dsa });
    }
    if (from - 1n > now.usn) {
      throw watermarkInvalid(cfg.name, `its USN ${wm.usn as string} is above the DC's highestCommittedUSN ${now.usn} (restored DC?)`, { dsa: now.dsa });
    }
    const ageDays = (Date.now() - Date.parse(wm.at as string)) / 86400000;
    const lifetime = await tombstoneLifetimeDays(client, cfg);
    if (ageDays >= lifetime - 1) {
      throw watermarkInvalid(cfg.name, `it is ${Math.floor(ageDays)} days old; deletions older than the tombstone lifetime (${lifetime} days) may be gone`);
    }
    const stateAfter = adWatermark(now);

    const nc = await findNamingContext(client, cfg.baseDn, cfg.url, cfg.name);
    const whole = resolveScope({ baseDn: nc });
    const usnFilter = `(uSNChanged>=${from})`;
    const search = (filter: string, attributes: string[], deleted = false, controls: Control[] = []): AsyncGenerator<Entry[]> =>
      dir.search(client, filter, attributes, { scope: whole, controls: deleted ? [new ShowDeletedControl(), ...controls] : controls });

    // 1. changed objects matching the filters: in scope → upsert, elsewhere in the partition → delete
    for (const { objectType, filter, attributes, controls } of dir.kinds) {
      for await (const page of search(`(&${filter}${usnFilter})`, attributes, false, controls?.())) {
        const wanted = objectType === 'user' ? page.filter((e) => !isComputerOrKrbtgt(e)) : page;
        const out = await scopedChanges(wanted, dir.scope, (e) => adEntryToCompleteObject(client, e, objectType, cfg), adAnchorOf);
        if (out.length) yield out;
      }
    }
    // 1b. renamed or moved containers: everything beneath has a new DN (and may have left or
    // entered the scope) though its own uSNChanged did not change: re-read each subtree
    const changedContainers: string[] = [];
    for await (const page of search(`(&${AD_CONTAINERS}${usnFilter})`, ['objectGUID'])) for (const e of page) changedContainers.push(e.dn);
    for (const container of containersToReread(changedContainers, nc)) {
      const subtree = resolveScope({ baseDn: container });
      for (const { objectType, filter, attributes, controls } of dir.kinds) {
        for await (const page of dir.search(client, filter, attributes, { scope: subtree, controls: controls?.() })) {
          const wanted = objectType === 'user' ? page.filter((e) => !isComputerOrKrbtgt(e)) : page;
          const out = await scopedChanges(wanted, dir.scope, (e) => adEntryToCompleteObject(client, e, objectType, cfg), adAnchorOf);
          if (out.length) yield out;
        }
      }
    }
    // 2. changed objects that match neither filter any more → delete
    const neither = dir.kinds.map((k) => `(!${k.filter})`).join('');
    for await (const page of search(`(&${AD_CANDIDATES}${usnFilter}${neither})`, ['objectGUID'])) {
      const out = deletesOf(page, adAnchorOf);
      if (out.length) yield out;
    }
    // 3. deleted objects (tombstones keep their objectGUID)
    for await (const page of search(`(&(isDeleted=TRUE)${usnFilter}${AD_CANDIDATES})`, ['objectGUID', 'lastKnownParent'], true)) {
      const out: DeltaChange[] = [];
      for (const e of page) {
        const anchor = adAnchorOf(e);
        if (!anchor) continue;
        const dn = tombstoneOriginalDn(e.dn, valuesOf(getAttr(e, 'lastKnownParent'))[0]);
        out.push(dn ? { kind: 'delete', anchor, dn, gone: true } : { kind: 'delete', anchor, gone: true });
      }
      if (out.length) yield out;
    }
    return stateAfter;
  });
}

/** currentWatermark(): the DC's state now, before a full import starts. */
export function adCurrentWatermark(cfg: AdCfg, dir: DirectoryConnection): Promise<string> {
  return dir.withConnection(async (client) => adWatermark(await readAdDcState(client, cfg)));
}
