/**
 * Generic LDAP source (OpenLDAP, 389-ds, ...): inetOrgPerson users, groupOfNames /
 * groupOfUniqueNames groups, anchored on entryUUID (RFC 4530).
 */
import { createDirectoryConnection } from '../../ldap/directory-connector.js';
import type { SecretResolver, SourceConnector } from '../types.js';
import { DEFAULT_FULL_IMPORT_INTERVAL, durationMs, ldapCurrentWatermark, ldapDeltaImport, ldapDeltaSettings } from './delta.js';
import { LDAP_KIND, ldapEntryToObject, type LdapCfg } from './entry.js';

export * from './entry.js';

export function createLdapConnector(cfg: LdapCfg, secret: SecretResolver): SourceConnector {
  const dir = createDirectoryConnection(cfg, secret, LDAP_KIND);
  return {
    name: cfg.name,
    kind: 'ldap',
    test: () => dir.test(),
    fullImport: () => dir.fullImport((_client, page, objectType) => page.map((e) => ldapEntryToObject(e, objectType, cfg.name))),
    currentWatermark: () => ldapCurrentWatermark(cfg, dir),
    deltaImport: (watermark: string) => ldapDeltaImport(cfg, dir, watermark),
    // without the accesslog a delta cannot see deletions: a scheduled full import finds them
    deltaSeesDeletions: ldapDeltaSettings(cfg).accesslogBase !== undefined,
    fullImportIntervalMs: durationMs(ldapDeltaSettings(cfg).fullImportInterval ?? DEFAULT_FULL_IMPORT_INTERVAL),
    close: () => dir.close(),
  };
}
