/**
 * The directory kinds (AD, LDAP): a connector of either needs nothing but its own configuration.
 * A module of its own, beside the registry, so that the full import's reader thread
 * (engine/reader/read-worker.ts) loads only what reads a directory: the registry also brings the
 * cloud client and undici, and they were two thirds of the thread's start (≈ 90 of 145 ms).
 */
import type { LdapConnectorConfig } from '../config/schema.js';
import { createAdConnector } from './ad/index.js';
import { createLdapConnector } from './ldap/index.js';
import type { SecretResolver, SourceConnector } from './types.js';

/** A directory (AD or LDAP) connector. */
export function createDirectoryConnector(cfg: LdapConnectorConfig, secret: SecretResolver): SourceConnector {
  return cfg.type === 'ad' ? createAdConnector(cfg, secret) : createLdapConnector(cfg, secret);
}
