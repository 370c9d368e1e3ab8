/**
 * An Active Directory entry read as a source object: the attributes asked for, ranged members
 * followed, the anchor from objectGUID. Both the full import (index.ts) and the delta (delta.ts)
 * use it.
 */
import type { Client, Entry } from 'ldapts';
import type { LdapConnectorConfig } from '../../config/schema.js';
import { IdsyncError } from '../../core/errors.js';
import { isSecretAttribute } from '../../core/secret-attributes.js';
import { mapLdapError } from '../../ldap/client.js';
import type { DirectoryKindSettings } from '../../ldap/directory-connector.js';
import { ExtendedDnControl, parseExtendedDn } from '../../ldap/controls.js';
import { guidFromString, guidToImmutableId, guidToString, sidToString } from '../../ldap/guid.js';
import { bufferOf, getAttr, valuesOf } from '../../ldap/search.js';
import type { ObjectType, SourceObject } from '../types.js';

export const AD_DEFAULT_USER_FILTER = '(&(objectCategory=person)(objectClass=user))';
export const AD_DEFAULT_GROUP_FILTER = '(objectClass=group)';

/** Always returned as Buffers (a GUID that happens to be valid UTF-8 would otherwise be mangled). */
export const AD_BINARY_ATTRIBUTES = ['objectGUID', 'objectSid', 'unicodePwd'];

export const AD_USER_ATTRIBUTES = [
  'sAMAccountName', 'userPrincipalName', 'mail', 'givenName', 'sn', 'displayName', 'cn', 'department',
  'title', 'company', 'telephoneNumber', 'mobile', 'employeeID', 'manager', 'description',
  'userAccountControl', 'objectGUID', 'objectSid', 'whenChanged', 'uSNChanged', 'objectClass',
];
export const AD_GROUP_ATTRIBUTES = [
  'sAMAccountName', 'cn', 'mail', 'description', 'member', 'groupType', 'objectGUID', 'objectSid',
  'whenChanged', 'uSNChanged', 'objectClass',
];

/** ldapts matches explicitBufferAttributes case-sensitively: list the spellings servers use. */
export const EXPLICIT_BUFFERS = AD_BINARY_ATTRIBUTES.flatMap((a) => [a, a.toLowerCase()]);

export type AdCfg = LdapConnectorConfig & { type: 'ad' };

/** What full and delta imports read from AD. */
export const AD_KIND: DirectoryKindSettings = {
  userFilter: AD_DEFAULT_USER_FILTER,
  groupFilter: AD_DEFAULT_GROUP_FILTER,
  userAttributes: AD_USER_ATTRIBUTES,
  groupAttributes: AD_GROUP_ATTRIBUTES,
  explicitBufferAttributes: EXPLICIT_BUFFERS,
  // every member value with the objectGUID of its object (see ExtendedDnControl)
  groupControls: () => [new ExtendedDnControl()],
};

const RANGE = /^([^;]+);range=(\d+)-(\d+|\*)$/i;

/**
 * Completes ranged attributes (`member;range=0-1499`) by asking for the next ranges until the
 * server answers with `;range=N-*`. Returns the merged values keyed by the plain attribute name.
 */
export async function fetchRangedValues(client: Client, dn: string, attribute: string, first: string[], end: number): Promise<string[]> {
  const values = [...first];
  let next = end + 1;
  for (let guard = 0; guard < 100000; guard++) {
    const r = await client.search(dn, { scope: 'base', filter: '(objectClass=*)', attributes: [`${attribute};range=${next}-*`] }, [new ExtendedDnControl()]);
    const e = r.searchEntries[0];
    if (!e) break;
    let done = true;
    let got = false;
    for (const [k, v] of Object.entries(e)) {
      const m = RANGE.exec(k);
      if (!m || (m[1] as string).toLowerCase() !== attribute.toLowerCase()) continue;
      got = true;
      values.push(...valuesOf(v));
      if (m[3] !== '*') {
        done = false;
        next = Number(m[3]) + 1;
      }
    }
    if (!got || done) break;
  }
  return values;
}

export function isComputerOrKrbtgt(entry: Entry): boolean {
  const classes = valuesOf(getAttr(entry, 'objectClass')).map((c) => c.toLowerCase());
  if (classes.includes('computer')) return true;
  const sam = valuesOf(getAttr(entry, 'sAMAccountName'))[0]?.toLowerCase();
  return sam === 'krbtgt' || (sam?.endsWith('$') ?? false);
}

/** Converts one AD entry (ranges already merged) into a SourceObject. */
export function adEntryToObject(entry: Entry, objectType: ObjectType, connectorName: string): SourceObject {
  const guid = bufferOf(getAttr(entry, 'objectGUID'));
  if (!guid || guid.length !== 16) {
    throw new IdsyncError('OBJECT_INVALID', `connector "${connectorName}": ${entry.dn} has no objectGUID`, {
      hint: 'The bind account must be able to read objectGUID of every object in scope.',
      details: { dn: entry.dn, connector: connectorName },
    });
  }
  const attributes: Record<string, string[]> = {};
  for (const [key, raw] of Object.entries(entry)) {
    if (key === 'dn') continue;
    const k = key.toLowerCase();
    if (k === 'objectguid' || isSecretAttribute(k)) continue;
    if (k === 'objectsid') {
      const sid = bufferOf(raw);
      if (sid) attributes.objectsid = [sidToString(sid)];
      continue;
    }
    const values = valuesOf(raw);
    if (values.length) attributes[k] = values;
  }
  attributes.objectguid = [guidToString(guid)];
  const object: SourceObject = { anchor: guidToImmutableId(guid), objectType, dn: entry.dn, attributes };
  if (objectType === 'group') {
    // Read with the extended DN control: `<GUID=...>;<SID=...>;CN=...` per member.
    const members = (attributes.member ?? []).map((v) => parseExtendedDn(v));
    if (members.length) attributes.member = members.map((m) => m.dn);
    object.members = members.map((m) => (m.guid ? { dn: m.dn, anchor: guidToImmutableId(guidFromString(m.guid)) } : { dn: m.dn }));
  }
  return object;
}

/** Merges `attr;range=a-b` keys of an entry into plain keys, fetching missing ranges. */
export async function completeRanges(client: Client, entry: Entry, url: string, connectorName: string): Promise<Entry> {
  let out: Entry | undefined;
  for (const [k, v] of Object.entries(entry)) {
    const m = RANGE.exec(k);
    if (!m) continue;
    out ??= { ...entry };
    delete out[k];
    const attr = m[1] as string;
    let values = valuesOf(v);
    if (m[3] !== '*') {
      try {
        values = await fetchRangedValues(client, entry.dn, attr, values, Number(m[3]));
      } catch (err) {
        throw mapLdapError(err, { url, phase: 'search', base: entry.dn, filter: `(objectClass=*) ${attr};range=${Number(m[3]) + 1}-*`, connectorName });
      }
    }
    const prev = out[attr];
    out[attr] = [...valuesOf(prev), ...values];
  }
  return out ?? entry;
}

/** A group's entry with every `member;range=` followed, as both imports need it. */
export async function adEntryToCompleteObject(client: Client, entry: Entry, objectType: ObjectType, cfg: AdCfg): Promise<SourceObject> {
  const complete = objectType === 'group' ? await completeRanges(client, entry, cfg.url, cfg.name) : entry;
  return adEntryToObject(complete, objectType, cfg.name);
}
