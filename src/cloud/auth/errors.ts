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
  | 'FENCED'
  | 'INTERNAL';

/** Every ApiErrorCode with its HTTP status and meaning: the source of docs/errors.md's cloud section. */
export const API_ERROR_CATALOG: Record<ApiErrorCode, { status: number; meaning: string }> = {
  TOKEN_MISSING: { status: 401, meaning: 'No `Authorization: Bearer` token was sent.' },
  TOKEN_INVALID: { status: 401, meaning: 'The token is malformed, expired, signed by another key, or revoked (its account\'s password changed or it was deleted).' },
  FORBIDDEN: { status: 403, meaning: 'The token\'s role may not do this (e.g. a sync account on the admin API).' },
  VALIDATION_FAILED: { status: 400, meaning: 'The request body or a parameter is invalid; the message names it.' },
  INVALID_JSON: { status: 400, meaning: 'The request body is not valid JSON.' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, meaning: 'The Content-Type is not application/json (or form-encoded, on the token endpoint).' },
  PAYLOAD_TOO_LARGE: { status: 413, meaning: 'The request body is larger than the server accepts.' },
  NOT_FOUND: { status: 404, meaning: 'No such endpoint, account or client.' },
  ACCOUNT_EXISTS: { status: 409, meaning: 'An account of that name exists (names are case-insensitive).' },
  CLIENT_EXISTS: { status: 409, meaning: 'A client of that id exists.' },
  NAME_TAKEN_BY_USER: { status: 409, meaning: 'A synced directory user holds that name; accounts and users never share a name.' },
  LAST_ADMINISTRATOR: { status: 409, meaning: 'The change would leave no global administrator.' },
  FENCED: { status: 409, meaning: 'A sync service node wrote with a fencing token lower than the highest seen: another node of its installation leads now (docs/ha.md). Nothing was written.' },
  INTERNAL: { status: 500, meaning: 'A server fault; the cloud directory\'s log has the details.' },
};

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

/** Every OAuth error of the token endpoint (RFC 6749 §5.2) and when it is answered. */
export const OAUTH_ERROR_CATALOG: Record<OAuthErrorCode, { status: number; meaning: string }> = {
  invalid_request: { status: 400, meaning: 'A parameter is missing, repeated, too long, or the body is malformed.' },
  invalid_client: { status: 401, meaning: 'Client authentication failed (client_credentials): unknown client or wrong secret.' },
  invalid_grant: {
    status: 400,
    meaning:
      'The user name or password is incorrect (the same answer for every cause; the audit log keeps the real one) — or, with `error_codes: [50053]` and `lockout.remaining_seconds`, the name is locked by smart lockout and the password was not checked (any grant; `Retry-After` says when to try again).',
  },
  unauthorized_client: { status: 400, meaning: 'The client may not use this grant.' },
  unsupported_grant_type: { status: 400, meaning: 'Only client_credentials and password are supported.' },
  invalid_scope: { status: 400, meaning: 'An unknown scope, or both an API and a sign-in scope.' },
};

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
