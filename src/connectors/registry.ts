/**
 * The one place that knows every connector kind. To add a kind: write src/connectors/<kind>/,
 * add its config schema to src/config/schema.ts and a case below (a directory kind: in
 * directory.ts, which the import's reader thread loads alone).
 */
import type { LoadedConfig } from '../config/load.js';
import type { SourceConnectorConfig } from '../config/schema.js';
import { IdsyncError } from '../core/errors.js';
import type { CredentialStore } from '../credentials/store.js';
import { configDurationMs } from '../config/schema.js';
import { CloudClient, type CloudClientOptions } from './cloud/client.js';
import { createDirectoryConnector } from './directory.js';
import { createLdifConnector } from './ldif/index.js';
import type { SecretResolver, SourceConnector } from './types.js';

/** Name under which the cloud connector's credential is stored. */
export const CLOUD_CONNECTOR = 'cloud';

export function createSourceConnector(loaded: LoadedConfig, cfg: SourceConnectorConfig, secret: SecretResolver): SourceConnector {
  switch (cfg.type) {
    case 'ad':
    case 'ldap':
      return createDirectoryConnector(cfg, secret);
    case 'ldif':
      return createLdifConnector(cfg, { resolvePath: loaded.resolvePath });
  }
}

export function connectorConfig(loaded: LoadedConfig, name: string): SourceConnectorConfig {
  const cfg = loaded.config.connectors.find((c) => c.name === name);
  if (!cfg) {
    const names = [...loaded.config.connectors.map((c) => c.name), CLOUD_CONNECTOR].join(', ');
    throw new IdsyncError('CONFIG_INVALID', `no connector named "${name}" in ${loaded.file}`, {
      hint: `Known connectors: ${names}.`,
    });
  }
  return cfg;
}

/** Whether a connector authenticates with a secret at all (an LDIF file does not). */
export function connectorNeedsSecret(loaded: LoadedConfig, name: string): boolean {
  return name === CLOUD_CONNECTOR || connectorConfig(loaded, name).type !== 'ldif';
}

/**
 * The cloud client every component uses: the secret read from the store at each sign-in, and the
 * store's record of refused secrets, so no component presents a refused secret twice.
 */
export function createCloudClient(loaded: LoadedConfig, store: CredentialStore, options: Omit<CloudClientOptions, 'guard'> = {}): CloudClient {
  return new CloudClient(loaded.config.cloud, store.resolver(CLOUD_CONNECTOR), { ...options, guard: cloudGuard(loaded, store) });
}

function cloudGuard(loaded: LoadedConfig, store: CredentialStore): NonNullable<CloudClientOptions['guard']> {
  return store.guard(CLOUD_CONNECTOR, configDurationMs(loaded.config.cloud.refusedCredentialRecheck));
}

/**
 * Validates a candidate secret against the connector's directory without saving it. With the store,
 * a cloud secret already refused is not presented again, and the answer is recorded.
 */
export async function testConnectorSecret(loaded: LoadedConfig, name: string, secret: string, store?: CredentialStore, candidate = true): Promise<void> {
  const resolver: SecretResolver = async () => secret;
  if (name === CLOUD_CONNECTOR) {
    const client = new CloudClient(loaded.config.cloud, resolver, { candidate, ...(store ? { guard: cloudGuard(loaded, store) } : {}) });
    try {
      await client.test();
    } finally {
      await client.close();
    }
    return;
  }
  const connector = createSourceConnector(loaded, connectorConfig(loaded, name), resolver);
  try {
    await connector.test();
  } finally {
    await connector.close();
  }
}

/** Tests the stored credential of a connector and records the outcome in the store. */
export async function testConnector(loaded: LoadedConfig, name: string, store: CredentialStore): Promise<void> {
  const needsSecret = connectorNeedsSecret(loaded, name);
  const secret = needsSecret ? store.get(name) : '';
  if (secret === undefined) {
    throw new IdsyncError('CREDENTIAL_MISSING', `no credential is set for connector "${name}"`, {
      hint: `Set it with \`idsync credentials set ${name}\`.`,
    });
  }
  try {
    await testConnectorSecret(loaded, name, secret, store, false);
    if (needsSecret) store.recordTest(name, true);
  } catch (err) {
    if (needsSecret) store.recordTest(name, false, err instanceof IdsyncError ? err.code : 'INTERNAL');
    throw err;
  }
}
