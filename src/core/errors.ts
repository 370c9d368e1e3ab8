/**
 * One error type for the whole code base. Every error carries a stable `code` (callers and tests
 * switch on it, docs list it) and a `hint` that tells the user what to do. Messages never contain
 * secrets: pass identifiers, never credentials or password material.
 */
export type ErrorCode =
  // configuration
  | 'CONFIG_NOT_FOUND'
  | 'CONFIG_INVALID'
  // directories and network
  | 'LDAP_UNREACHABLE'
  | 'LDAP_BIND_FAILED'
  | 'LDAP_TLS_FAILED'
  | 'LDAP_SEARCH_FAILED'
  | 'LDAP_INVALID_DN'
  | 'LDIF_PARSE_ERROR'
  | 'LDIF_NOT_FOUND'
  | 'OBJECT_INVALID'
  // cloud directory as seen by the sync engine
  | 'CLOUD_UNREACHABLE'
  | 'CLOUD_AUTH_FAILED'
  | 'CLOUD_TENANT_SHARED'
  | 'CLOUD_REJECTED'
  | 'CLOUD_CONFLICT'
  | 'CLOUD_SERVER_ERROR'
  | 'CLOUD_UNAVAILABLE'
  // credentials and secrets
  | 'CREDENTIAL_MISSING'
  | 'CREDENTIAL_INVALID'
  | 'SECRET_KEY_INVALID'
  // passwords
  | 'PASSWORD_TOO_LONG'
  | 'PASSWORD_NOT_TEXT'
  | 'HASH_INPUT_INVALID'
  | 'PASSWORD_USER_UNKNOWN'
  | 'PASSWORD_INPUT_INVALID'
  | 'AGENT_STATE_INVALID'
  | 'AGENT_FORWARD_FAILED'
  // DCE/RPC and MS-DRSR (password hash sync over replication)
  | 'RPC_UNREACHABLE'
  | 'RPC_PROTOCOL_ERROR'
  | 'RPC_NDR_INVALID'
  | 'RPC_BIND_REJECTED'
  | 'RPC_AUTH_FAILED'
  | 'RPC_FAULT'
  | 'RPC_INTEGRITY_FAILED'
  | 'RPC_TIMEOUT'
  | 'RPC_ENDPOINT_NOT_FOUND'
  | 'DRS_ACCESS_DENIED'
  | 'DRS_FAILED'
  | 'DRS_SECRET_INVALID'
  // engine and store
  | 'STORE_FAILED'
  | 'PATH_UNUSABLE'
  | 'RUN_IN_PROGRESS'
  | 'EXPORT_FAILED'
  | 'EXPORT_PENDING'
  | 'DELETION_THRESHOLD_EXCEEDED'
  | 'IMPORT_FAILED'
  | 'WATERMARK_INVALID'
  // connector identity (a connector is its name: renaming or removing one is explicit)
  | 'CONNECTOR_NOT_CONFIGURED'
  | 'CONNECTOR_UNKNOWN'
  | 'CONNECTOR_NAME_IN_USE'
  // high availability (several `idsync serve` nodes on one PostgreSQL)
  | 'LEASE_LOST'
  | 'INTERNAL';

export interface IdsyncErrorOptions {
  /** What the user should do about it, in one or two sentences. */
  hint?: string;
  /** Structured, secret-free details (DN, connector name, file:line...). */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class IdsyncError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: IdsyncErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'IdsyncError';
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, hint: this.hint, details: this.details };
  }
}

export function isIdsyncError(err: unknown, code?: ErrorCode): err is IdsyncError {
  return err instanceof IdsyncError && (code === undefined || err.code === code);
}

/** Wrap anything thrown into an IdsyncError without losing an existing code. */
export function toIdsyncError(err: unknown, fallback: ErrorCode = 'INTERNAL'): IdsyncError {
  if (err instanceof IdsyncError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new IdsyncError(fallback, message, { cause: err });
}
