/**
 * What every grant of the token endpoint shares: its dependencies, parameter helpers, and the one
 * way a credential is checked (through the smart lockout, audited). A grant file (one per
 * grant_type, listed in index.ts) turns request parameters into a token with these.
 */
import type { FastifyRequest } from 'fastify';
import type { AccountStore, CredentialCheck } from '../../accounts/store.js';
import type { AuditEntry, AuditLog, AuditReason } from '../../audit/store.js';
import type { PasswordHashStore } from '../../passwords/store.js';
import type { Sql } from '../../store/sql.js';
import { AccountLockedError, OAuthError } from '../errors.js';
import { UNFAMILIAR, type Lockout } from '../lockout.js';
import type { SignedToken, TokenService } from '../tokens.js';

export const API_SCOPE = 'idsync.api';
export const SIGNIN_SCOPES = ['openid', 'idsync.signin'];

export interface TokenEndpointDeps {
  db: Sql;
  accounts: AccountStore;
  hashes: PasswordHashStore;
  lockout: Lockout;
  audit: AuditLog;
  tokens: TokenService;
}

/** Single-valued string parameters of the request (form or JSON body). */
export type Params = Record<string, string>;

/** One grant_type of POST /oauth2/token. */
export interface Grant {
  readonly type: string;
  /** The token and the scope granted, or an OAuthError. */
  handle(ctx: GrantContext, req: FastifyRequest, params: Params): Promise<{ token: SignedToken; scope: string }>;
}

export const BAD_USER_CREDENTIALS = 'the user name or password is incorrect';

export function required(params: Params, name: string): string {
  const v = params[name];
  if (v === undefined || v === '') throw new OAuthError(400, 'invalid_request', `the parameter ${name} is required`);
  return v;
}

export const reasonOf = (check: CredentialCheck, unknown: AuditReason, bad: AuditReason): AuditReason => (check.ok ? 'success' : check.reason === 'unknown' ? unknown : bad);

type AuditDetails = NonNullable<AuditEntry['details']>;

export interface GuardedCheck {
  key: string;
  subject: string;
  secret: string;
  stamp: () => Promise<string>;
  type: 'token' | 'signin';
  details?: AuditDetails;
  refuse: () => Error;
}

export interface GrantContext {
  readonly deps: TokenEndpointDeps;
  /**
   * Every credential check goes the same way through the smart lockout (auth/lockout.ts): while the
   * caller's counter is locked it is refused as locked, not checked; a repeat of a recent wrong
   * secret is refused, not checked and not counted; otherwise the check is reserved first, then
   * made, audited with the real reason, and counted. `check` returns the audit reason ('success'
   * or why not) and what the caller needs on success.
   */
  guarded<T>(req: FastifyRequest, g: GuardedCheck, check: () => Promise<{ reason: AuditReason; value?: T; details?: AuditDetails }>): Promise<T>;
}

export function grantContext(deps: TokenEndpointDeps): GrantContext {
  const { lockout, audit } = deps;
  return {
    deps,
    async guarded<T>(req: FastifyRequest, g: GuardedCheck, check: () => Promise<{ reason: AuditReason; value?: T; details?: AuditDetails }>): Promise<T> {
      const base = { type: g.type, subject: g.subject, ip: req.ip, result: 'failure' as const };
      const admission = await lockout.begin({ name: g.key, ip: req.ip, secret: g.secret, credentialStamp: await g.stamp() });
      if (admission.kind === 'locked') {
        const counter = admission.counter === UNFAMILIAR ? 'unfamiliar' : 'familiar';
        await audit.record({ ...base, reason: 'locked_out', details: { ...g.details, counter, remainingSeconds: admission.remainingSeconds } });
        throw new AccountLockedError(admission.remainingSeconds);
      }
      if (admission.kind === 'repeat') {
        await audit.record({ ...base, reason: 'repeated_bad_secret', ...(g.details ? { details: g.details } : {}) });
        throw g.refuse();
      }
      let r: { reason: AuditReason; value?: T; details?: AuditDetails };
      try {
        r = await check();
      } catch (err) {
        await admission.finish('void');
        throw err;
      }
      const details = r.details ?? g.details;
      const ok = r.reason === 'success' && r.value !== undefined;
      await admission.finish(ok ? 'success' : 'failure');
      await audit.record({ ...base, result: ok ? 'success' : 'failure', reason: r.reason, ...(details ? { details } : {}) });
      if (!ok) throw g.refuse();
      return r.value as T;
    },
  };
}
