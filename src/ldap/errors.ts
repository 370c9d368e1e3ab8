/**
 * The LDAP client's failures, one class per failure (the idea of ldapts' errors/resultCodeErrors/):
 * each is an IdsyncError with its stable code, so what switches on codes keeps working, and carries
 * typed fields, so a caller that needs the why switches on the class and reads a field instead of
 * matching message text or comparing raw result codes.
 */
import { IdsyncError, type IdsyncErrorOptions } from '../core/errors.js';

/** TLS to the directory failed (or StartTLS was refused): the password was not sent. */
export class LdapTlsError extends IdsyncError {
  constructor(
    message: string,
    readonly url: string,
    /** In plain words, e.g. "the server certificate is self-signed". */
    readonly reason: string,
    options: IdsyncErrorOptions = {},
  ) {
    super('LDAP_TLS_FAILED', message, options);
    this.name = 'LdapTlsError';
  }
}

/** The directory could not be reached, or the connection was lost or timed out. */
export class LdapUnreachableError extends IdsyncError {
  constructor(
    message: string,
    readonly url: string,
    options: IdsyncErrorOptions = {},
  ) {
    super('LDAP_UNREACHABLE', message, options);
    this.name = 'LdapUnreachableError';
  }
}

/**
 * Why a bind was refused. From Active Directory's "data XXX" sub-code of invalidCredentials (49)
 * where it gives one; `encryption-required` for strongAuthRequired (8) and confidentialityRequired
 * (13); `empty-password` when idsync refused before asking (an empty password is an anonymous bind).
 */
export type LdapBindReason =
  | 'invalid-credentials'
  | 'user-not-found'
  | 'logon-not-permitted'
  | 'password-expired'
  | 'account-disabled'
  | 'account-expired'
  | 'must-reset-password'
  | 'account-locked'
  | 'too-many-sids'
  | 'encryption-required'
  | 'empty-password'
  | 'refused';

/** The directory refused the bind (or idsync refused to send an empty password). */
export class LdapBindError extends IdsyncError {
  constructor(
    message: string,
    readonly bindDn: string | undefined,
    readonly reason: LdapBindReason,
    /** AD's sub-code as it sent it (e.g. "52e"), when it sent one. */
    readonly adSubCode: string | undefined,
    options: IdsyncErrorOptions = {},
  ) {
    super('LDAP_BIND_FAILED', message, options);
    this.name = 'LdapBindError';
  }

  /** The name or the password is wrong: a new password fixes it (not the account's state). */
  get wrongCredentials(): boolean {
    return this.reason === 'invalid-credentials' || this.reason === 'user-not-found';
  }
}

export type LdapSearchReason = 'no-such-object' | 'insufficient-access' | 'unreadable-base' | 'other';

/** A search failed: its base, its filter and why. */
export class LdapSearchError extends IdsyncError {
  constructor(
    message: string,
    readonly base: string | undefined,
    readonly filter: string | undefined,
    readonly reason: LdapSearchReason,
    options: IdsyncErrorOptions = {},
  ) {
    super('LDAP_SEARCH_FAILED', message, options);
    this.name = 'LdapSearchError';
  }
}
