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

/** Converts one ldapts entry into a SourceObject (lower-case keys, string values, no empties). */
export function ldapEntryToObject(entry: Entry, objectType: ObjectType, connectorName: string): SourceObject {
  const attributes: Record<string, string[]> = {};
  for (const [key, raw] of Object.entries(entry)) {
    if (key === 'dn') continue;
    const values = valuesOf(raw);
    if (!values.length) continue;
    let k = key.toLowerCase();
    if (isSecretAttribute(k)) {
      // Only an NT hash goes on (under its bare type), to the import step's password extraction.
      if (!NT_HASH_ATTRIBUTE_TYPES.includes(attributeType(k))) continue;
      k = attributeType(k);
    }
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
