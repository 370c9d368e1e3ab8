/**
 * An LDAP entry read as a source object, anchored on entryUUID: both the full import (index.ts) and
 * the delta (delta.ts) use it.
 */
import type { Entry } from 'ldapts';
import type { LdapConnectorConfig } from '../../config/schema.js';
import { IdsyncError } from '../../core/errors.js';
import { attributeType, isSecretAttribute, NT_HASH_ATTRIBUTE_TYPES } from '../../core/secret-attributes.js';
import type { DirectoryKindSettings } from '../../ldap/directory-connector.js';
import { getAttr, valuesOf } from '../../ldap/search.js';
import type { ObjectType, SourceObject } from '../types.js';

export const LDAP_DEFAULT_USER_FILTER = '(objectClass=inetOrgPerson)';
export const LDAP_DEFAULT_GROUP_FILTER = '(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))';

export const LDAP_USER_ATTRIBUTES = [
  'uid', 'cn', 'sn', 'givenName', 'displayName', 'mail', 'telephoneNumber', 'mobile', 'title',
  'departmentNumber', 'ou', 'employeeNumber', 'employeeType', 'manager', 'description',
  'sambaNTPassword', 'entryUUID', 'objectClass',
];
export const LDAP_GROUP_ATTRIBUTES = ['cn', 'description', 'mail', 'member', 'uniqueMember', 'entryUUID', 'objectClass'];

export type LdapCfg = LdapConnectorConfig & { type: 'ldap' };

/** What full and delta imports read from a generic LDAP server. */
export const LDAP_KIND: DirectoryKindSettings = {
  userFilter: LDAP_DEFAULT_USER_FILTER,
  groupFilter: LDAP_DEFAULT_GROUP_FILTER,
  userAttributes: LDAP_USER_ATTRIBUTES,
  groupAttributes: LDAP_GROUP_ATTRIBUTES,
};

/** The anchor: entryUUID as text (undefined when the entry has none). */
export function ldapAnchorOf(entry: Entry): string | undefined {
  return valuesOf(getAttr(entry, 'entryUUID'))[0];
}

/** Strips the optional `#'0101'B` UID suffix of a uniqueMember value (nameAndOptionalUID syntax). */
export function stripUniqueMemberUid(value: string): string {
  const m = /#'[01]*'B$/.exec(value);
  if (!m) return value;
  // a "#" escaped with a backslash belongs to the DN
  let slashes = 0;
  for (let k = m.index - 1; k >= 0 && value[k] === '\\'; k--) slashes++;
  return slashes % 2 === 0 ? value.slice(0, m.index) : value;
}

/**
 * The key an attribute description (as the server spells it) is staged under: lower-cased; a
 * secret attribute only when it is an NT hash (under its bare type, for the import step's password
 * extraction), else null (dropped). Remembered per spelling: a directory uses a few dozen, and the
 * mapping ran for every attribute of every entry.
 */
const stagedKeys = new Map<string, string | null>();
function stagedKey(description: string): string | null {
  let k = stagedKeys.get(description);
  if (k !== undefined) return k;
  k = description.toLowerCase();
  if (isSecretAttribute(k)) k = NT_HASH_ATTRIBUTE_TYPES.includes(attributeType(k)) ? attributeType(k) : null;
  if (stagedKeys.size < 4096) stagedKeys.set(description, k); // bounded: a hostile server may invent names
  return k;
}

/** Converts one ldapts entry into a SourceObject (lower-case keys, string values, no empties). */
export function ldapEntryToObject(entry: Entry, objectType: ObjectType, connectorName: string): SourceObject {
  const attributes: Record<string, string[]> = {};
  for (const key in entry) {
    if (key === 'dn') continue;
    const raw = entry[key]!;
    // ldapts gives one value as a string, several as an array (of strings, or of Buffers when
    // binary): an array of strings is taken as it is, not copied.
    const values = typeof raw === 'string' ? [raw] : Array.isArray(raw) && raw.every((v) => typeof v === 'string') ? (raw as string[]) : valuesOf(raw);
    if (!values.length) continue;
    const k = stagedKey(key);
    if (k === null) continue;
    attributes[k] = k === 'uniquemember' ? values.map(stripUniqueMemberUid) : values;
  }
  const anchor = ldapAnchorOf(entry);
  if (!anchor) {
    throw new IdsyncError('OBJECT_INVALID', `connector "${connectorName}": ${entry.dn} has no entryUUID`, {
      hint: 'idsync anchors LDAP objects on entryUUID (RFC 4530). Enable it on the server (389-ds: the entryUUID plugin) or use an LDIF export with anchorAttribute.',
      details: { dn: entry.dn, connector: connectorName },
    });
  }
  return { anchor, objectType, dn: entry.dn, attributes };
}
