/**
 * Generic LDAP source (OpenLDAP, 389-ds, ...): inetOrgPerson users, groupOfNames /
 * groupOfUniqueNames groups, anchored on entryUUID (RFC 4530).
 */
import type { Entry } from 'ldapts';
import type { LdapConnectorConfig } from '../../config/schema.js';
import { IdsyncError } from '../../core/errors.js';
import { connectLdap, type LdapConnection } from '../../ldap/client.js';
import { getAttr, pagedSearch, readBase, resolveScope, valuesOf } from '../../ldap/search.js';
import type { ObjectType, SecretResolver, SourceConnector, SourceObject } from '../types.js';
import { ldapCurrentWatermark, ldapDeltaImport } from './delta.js';

export const LDAP_DEFAULT_USER_FILTER = '(objectClass=inetOrgPerson)';
export const LDAP_DEFAULT_GROUP_FILTER = '(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))';

export const LDAP_USER_ATTRIBUTES = [
  'uid', 'cn', 'sn', 'givenName', 'displayName', 'mail', 'telephoneNumber', 'mobile', 'title',
  'departmentNumber', 'ou', 'employeeNumber', 'employeeType', 'manager', 'description',
  'sambaNTPassword', 'entryUUID', 'objectClass',
];
export const LDAP_GROUP_ATTRIBUTES = ['cn', 'description', 'mail', 'member', 'uniqueMember', 'entryUUID', 'objectClass'];

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
    const k = key.toLowerCase();
    attributes[k] = k === 'uniquemember' ? values.map(stripUniqueMemberUid) : values;
  }
  const anchor = valuesOf(getAttr(entry, 'entryUUID'))[0];
  if (!anchor) {
    throw new IdsyncError('OBJECT_INVALID', `connector "${connectorName}": ${entry.dn} has no entryUUID`, {
      hint: 'idsync anchors LDAP objects on entryUUID (RFC 4530). Enable it on the server (389-ds: the entryUUID plugin) or use an LDIF export with anchorAttribute.',
      details: { dn: entry.dn, connector: connectorName },
    });
  }
  return { anchor, objectType, dn: entry.dn, attributes };
}

export function createLdapConnector(cfg: LdapConnectorConfig & { type: 'ldap' }, secret: SecretResolver): SourceConnector {
  const scope = resolveScope({ baseDn: cfg.baseDn, include: cfg.scope?.include, exclude: cfg.scope?.exclude });
  const open = (): Promise<LdapConnection> =>
    connectLdap({ url: cfg.url, bindDn: cfg.bindDn, tls: cfg.tls, timeoutMs: cfg.timeoutMs, connectorName: cfg.name }, secret);
  const live = new Set<LdapConnection>();

  return {
    name: cfg.name,
    kind: 'ldap',
    async test() {
      const conn = await open();
      try {
        await readBase(conn.client, cfg.baseDn, cfg.url, cfg.name);
        for (const b of scope.bases) if (b !== cfg.baseDn) await readBase(conn.client, b, cfg.url, cfg.name);
      } finally {
        await conn.close();
      }
    },
    async *fullImport() {
      const conn = await open();
      live.add(conn);
      try {
        const kinds: Array<[ObjectType, string, string[]]> = [
          ['user', cfg.userFilter ?? LDAP_DEFAULT_USER_FILTER, LDAP_USER_ATTRIBUTES],
          ['group', cfg.groupFilter ?? LDAP_DEFAULT_GROUP_FILTER, LDAP_GROUP_ATTRIBUTES],
        ];
        for (const [objectType, filter, attributes] of kinds) {
          for await (const page of pagedSearch(conn.client, { url: cfg.url, connectorName: cfg.name, filter, attributes, pageSize: cfg.pageSize, scope })) {
            yield page.map((e) => ldapEntryToObject(e, objectType, cfg.name));
          }
        }
      } finally {
        live.delete(conn);
        await conn.close();
      }
    },
    currentWatermark() {
      return ldapCurrentWatermark(cfg, open);
    },
    deltaImport(watermark: string) {
      return ldapDeltaImport(cfg, scope, open, live, watermark);
    },
    async close() {
      const all = [...live];
      live.clear();
      await Promise.all(all.map((c) => c.close()));
    },
  };
}
