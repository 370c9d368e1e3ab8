/** Password hash synchronization: the public surface (see docs/password-hash-sync.md). */
export {
  PasswordPipeline,
  passwordMigrations,
  DEFAULT_BATCH_SIZE,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_MAX_BACKOFF_MS,
  DEFAULT_POLL_MS,
  type PasswordPipelineDeps,
  type PasswordPipelineOptions,
  type PasswordStatus,
  type PasswordStatusRecord,
  type DeliveryCounts,
} from './pipeline.js';
export {
  AGENT_BATCH_PATH,
  AGENT_TOKEN_CREDENTIAL,
  MAX_AGENT_BATCH,
  PCN_PATH,
  handleAgentBatch,
  handlePasswordChangeNotification,
  verifyBearer,
  type HandlerResult,
} from './handlers.js';
export { extractPasswordAttributes, PASSWORD_ATTRIBUTES } from './sources/ldap.js';
export { type PasswordErrorCode } from './errors.js';
export { knownPasswordCount, oldestOutboxError, outboxDepth, outboxHasWork, type OutboxDepth } from './outbox.js';
