/** The encrypted credential store: see store.ts and docs/credentials.md. */
export {
  CredentialStore,
  credentialMigrations,
  openCredentialStore,
  MAX_SECRET_BYTES,
  type CredentialInfo,
  type SecretResolver,
} from './store.js';
export {
  SECRET_KEY_BYTES,
  SECRET_KEY_ENV,
  SECRET_KEY_FILE,
  decodeKey,
  encodeKey,
  generateKey,
  keyId,
  loadOrCreateKey,
  readKeyFile,
  type LoadedKey,
} from './key.js';
export { DEFAULT_RECHECK_MS, RefusedSecrets, refusalMigrations, type PresentDecision, type RefusalInput, type RefusalRecord } from './refusals.js';
