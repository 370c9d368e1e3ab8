/**
 * Errors of the cloud directory's HTTP APIs. Errors are data: an HTTP status, a stable code the
 * client can switch on, and a message that is safe to show (no secrets, no internals).
 *
 * - ApiError    -> `{ "error": { "code": "...", "message": "..." } }` (admin and password-hash APIs)
 * - OAuthError  -> `{ "error": "invalid_grant", "error_description": "..." }` (RFC 6749 §5.2, token endpoint)
 */

export type ApiErrorCode =
  | 'TOKEN_MISSING'
  | 'TOKEN_INVALID'
  | 'FORBIDDEN'
  | 'VALIDATION_FAILED'
  | 'INVALID_JSON'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'PAYLOAD_TOO_LARGE'
  | 'NOT_FOUND'
  | 'ACCOUNT_EXISTS'
  | 'CLIENT_EXISTS'
  | 'NAME_TAKEN_BY_USER'
  | 'LAST_ADMINISTRATOR'
  | 'INTERNAL';

export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: ApiErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toBody(): { error: { code: ApiErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

export type OAuthErrorCode = 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'unauthorized_client' | 'unsupported_grant_type' | 'invalid_scope';

export class OAuthError extends Error {
  constructor(
    readonly statusCode: 400 | 401,
    readonly code: OAuthErrorCode,
    readonly description: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(description);
    this.name = 'OAuthError';
  }

  toBody(): { error: OAuthErrorCode; error_description: string } {
    return { error: this.code, error_description: this.description };
  }
}

/** Entra's code for "the account is locked"; clients switch on it (and on `lockout`), not on the text. */
export const ACCOUNT_LOCKED_ERROR_CODE = 50053;

/**
 * The answer while smart lockout holds a name at the caller's address. Unlike other credential
 * failures it says what happened, because the password was not checked: a client that knows it
 * holds the right password must wait, not ask its administrator for another one.
 */
export class AccountLockedError extends OAuthError {
  constructor(readonly remainingSeconds: number) {
    super(400, 'invalid_grant', `The account is locked for ${remainingSeconds} s after too many failed sign-ins; the password was not checked.`, {
      'retry-after': String(remainingSeconds),
    });
    this.name = 'AccountLockedError';
  }

  override toBody(): { error: OAuthErrorCode; error_description: string; error_codes: number[]; lockout: { remaining_seconds: number } } {
    return { ...super.toBody(), error_codes: [ACCOUNT_LOCKED_ERROR_CODE], lockout: { remaining_seconds: this.remainingSeconds } };
  }
}
