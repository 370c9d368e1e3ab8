/**
 * POST /oauth2/token (RFC 6749 §4.3, §4.4), bodies form-encoded or JSON.
 *
 * grant_type=client_credentials  client_id + client_secret (body or HTTP Basic)  -> API token
 * grant_type=password            username + password                             -> API token or user token
 *
 * Two namespaces answer the password grant, and they never mix:
 * - cloud accounts (administrators, sync accounts) get an API token for SCIM / hashes / admin;
 * - synced directory users (their SCIM userName, i.e. the on-premises userPrincipalName) are
 *   checked against their synced OrgId hash and get a user token that opens no API here.
 * `scope=idsync.api` asks for the account namespace, `scope=openid` or `idsync.signin` for the
 * directory; without a scope a name that is a cloud account is an account sign-in, any other name
 * a directory sign-in. A sync account is never a directory user and vice versa: a failed account
 * sign-in does not fall back to a directory user of the same name.
 *
 * Every failure of a credential answers the same `invalid_grant` / `invalid_client`, whatever the
 * cause (unknown name, wrong password, no hash, disabled); the audit log keeps the cause. The one
 * exception is a lockout, where the password was not checked: that answer says so, with the time
 * left (`error_codes: [50053]`, `lockout.remaining_seconds`, `Retry-After`), for every grant.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { verifyOrgIdHash } from '../../passwords/hash.js';
import type { Sql } from '../store/sql.js';
import type { AccountStore, CredentialCheck } from '../accounts/store.js';
import type { AuditEntry, AuditLog, AuditReason } from '../audit/store.js';
import type { PasswordHashStore } from '../passwords/store.js';
import { findUserForSignIn } from '../scim/index.js';
import { AccountLockedError, OAuthError } from './errors.js';
import { UNFAMILIAR, type Lockout } from './lockout.js';
import type { SignedToken, TokenService } from './tokens.js';

export const API_SCOPE = 'idsync.api';
export const SIGNIN_SCOPES = ['openid', 'idsync.signin'];

/** Checked when a directory user has no hash, so that case costs what a wrong password costs. */
const DUMMY_ORGID_HASH = `v1;PPH1_MD4,${'0'.repeat(20)},1000,${'0'.repeat(64)};`;
const MAX_PARAM = 1024;

export interface TokenEndpointDeps {
  db: Sql;
  accounts: AccountStore;
  hashes: PasswordHashStore;
  lockout: Lockout;
  audit: AuditLog;
  tokens: TokenService;
}

type Params = Record<string, string>;

const BAD_USER_CREDENTIALS = 'the user name or password is incorrect';

/** Form or JSON body as single-valued string parameters (RFC 6749 §3.2: no repeats). */
function readParams(body: unknown): Params {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw new OAuthError(400, 'invalid_request', 'the request body must be form-encoded or a JSON object');
  const out: Params = {};
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    if (Array.isArray(v)) throw new OAuthError(400, 'invalid_request', `the parameter ${k} is repeated`);
    if (typeof v !== 'string') throw new OAuthError(400, 'invalid_request', `the parameter ${k} must be a string`);
    if (v.length > MAX_PARAM) throw new OAuthError(400, 'invalid_request', `the parameter ${k} is too long`);
    out[k] = v;
  }
  return out;
}

/** HTTP Basic client credentials (RFC 6749 §2.3.1: each part form-urlencoded). */
function basicCredentials(req: FastifyRequest): { id: string; secret: string } | undefined {
  const header = req.headers.authorization;
  if (typeof header !== 'string' || !/^Basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new OAuthError(400, 'invalid_request', 'malformed HTTP Basic credentials');
  const unescape = (s: string) => {
    try {
      return decodeURIComponent(s.replace(/\+/g, ' '));
    } catch {
      throw new OAuthError(400, 'invalid_request', 'malformed HTTP Basic credentials');
    }
  };
  return { id: unescape(decoded.slice(0, colon)), secret: unescape(decoded.slice(colon + 1)) };
}

function required(params: Params, name: string): string {
  const v = params[name];
  if (v === undefined || v === '') throw new OAuthError(400, 'invalid_request', `the parameter ${name} is required`);
  return v;
}

export function registerTokenEndpoint(app: FastifyInstance, deps: TokenEndpointDeps): void {
  const { accounts, lockout, audit, tokens } = deps;

  const reasonOf = (check: CredentialCheck, unknown: AuditReason, bad: AuditReason): AuditReason =>
    check.ok ? 'success' : check.reason === 'unknown' ? unknown : bad;

  type AuditDetails = NonNullable<AuditEntry['details']>;

  /**
   * Every credential check goes the same way through the smart lockout (auth/lockout.ts): while the
   * caller's counter is locked it is refused as locked, not checked; a repeat of a recent wrong
   * secret is refused, not checked and not counted; otherwise the check is reserved first, then
   * made, audited with the real reason, and counted. `check` returns the audit reason ('success'
   * or why not) and what the caller needs on success.
   */
  async function guarded<T>(
    req: FastifyRequest,
    g: { key: string; subject: string; secret: string; stamp: () => Promise<string>; type: 'token' | 'signin'; details?: AuditDetails; refuse: () => Error },
    check: () => Promise<{ reason: AuditReason; value?: T; details?: AuditDetails }>,
  ): Promise<T> {
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
  }

  async function clientCredentials(req: FastifyRequest, params: Params): Promise<SignedToken> {
    const basic = basicCredentials(req);
    if (basic && (params.client_id !== undefined || params.client_secret !== undefined)) {
      throw new OAuthError(400, 'invalid_request', 'send the client credentials once: in the Authorization header or in the body');
    }
    const id = basic?.id ?? required(params, 'client_id');
    const secret = basic?.secret ?? required(params, 'client_secret');
    const invalid = () =>
      new OAuthError(401, 'invalid_client', 'client authentication failed', basic ? { 'www-authenticate': 'Basic realm="idsync"' } : {});
    const stamp = () => accounts.credentialStamp('client', id);
    const principal = await guarded(req, { key: `client:${id}`, subject: id, secret, stamp, type: 'token', details: { grant: 'client_credentials' }, refuse: invalid }, async () => {
      const check = await accounts.checkClientSecret(id, secret);
      return { reason: reasonOf(check, 'unknown_client', 'bad_client_secret'), value: check.ok ? check.principal : undefined };
    });
    return tokens.issueApiToken(principal);
  }

  async function accountPassword(req: FastifyRequest, username: string, password: string): Promise<SignedToken> {
    const refuse = () => new OAuthError(400, 'invalid_grant', BAD_USER_CREDENTIALS);
    const stamp = () => accounts.credentialStamp('account', username);
    const principal = await guarded(req, { key: `account:${username}`, subject: username, secret: password, stamp, type: 'token', details: { grant: 'password' }, refuse }, async () => {
      const check = await accounts.checkAccountPassword(username, password);
      return { reason: reasonOf(check, 'unknown_user', 'bad_password'), value: check.ok ? check.principal : undefined };
    });
    return tokens.issueApiToken(principal);
  }

  async function userPassword(req: FastifyRequest, userName: string, password: string): Promise<SignedToken> {
    const refuse = () => new OAuthError(400, 'invalid_grant', BAD_USER_CREDENTIALS);
    // The user, whether it may sign in, and its hash: a change of any lets a remembered wrong password be tried again.
    const stamp = async () => {
      const user = await findUserForSignIn(deps.db, userName);
      return user ? `${user.id}\0${String(user.active)}\0${(await deps.hashes.hashFor(user.id)) ?? ''}` : '';
    };
    const current = await guarded(req, { key: `user:${userName}`, subject: userName, secret: password, stamp, type: 'signin', refuse }, async () => {
      const user = await findUserForSignIn(deps.db, userName);
      const hash = user ? await deps.hashes.hashFor(user.id) : undefined;
      // Always one hash check, so that every failure costs the same.
      const matches = await verifyOrgIdHash(password, hash ?? DUMMY_ORGID_HASH);
      // Re-read: the user may have been disabled or deleted while we hashed.
      const now = user && (await findUserForSignIn(deps.db, userName));
      let reason: AuditReason;
      if (!user || !now || now.id !== user.id) reason = 'unknown_user';
      else if (!now.active) reason = 'user_disabled';
      else if (hash === undefined) reason = 'no_password_hash';
      else if (!matches) reason = 'bad_password';
      else reason = 'success';
      return { reason, value: now || undefined, ...(now ? { details: { userId: now.id } } : {}) };
    });
    return tokens.issueUserToken(current);
  }

  async function password(req: FastifyRequest, params: Params): Promise<{ token: SignedToken; scope: string }> {
    const username = required(params, 'username');
    const pw = required(params, 'password');
    const scopes = (params.scope ?? '').split(' ').filter(Boolean);
    const wantsApi = scopes.includes(API_SCOPE);
    const wantsSignin = scopes.some((s) => SIGNIN_SCOPES.includes(s));
    if (wantsApi && wantsSignin) throw new OAuthError(400, 'invalid_scope', `ask for ${API_SCOPE} or a sign-in scope, not both`);
    const unknown = scopes.find((s) => s !== API_SCOPE && !SIGNIN_SCOPES.includes(s));
    if (unknown !== undefined) throw new OAuthError(400, 'invalid_scope', `unknown scope ${unknown.slice(0, 64)}`);
    const asAccount = wantsApi || (!wantsSignin && (await accounts.hasAccount(username)));
    return asAccount
      ? { token: await accountPassword(req, username, pw), scope: API_SCOPE }
      : { token: await userPassword(req, username, pw), scope: wantsSignin ? scopes.join(' ') : 'idsync.signin' };
  }

  function send(reply: FastifyReply, token: SignedToken, scope: string) {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
    return { access_token: token.token, token_type: 'Bearer', expires_in: token.expiresIn, scope };
  }

  app.register(async (scope) => {
    // Form bodies only for this endpoint; parsed to single-valued strings (repeats kept as arrays to refuse).
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16 * 1024 }, (_req, body, done) => {
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of new URLSearchParams(body as string)) {
        const prev = out[k];
        out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
      }
      done(null, out);
    });

    scope.post('/oauth2/token', { bodyLimit: 16 * 1024 }, async (req, reply) => {
      const params = readParams(req.body);
      const grant = required(params, 'grant_type');
      if (grant === 'client_credentials') return send(reply, await clientCredentials(req, params), API_SCOPE);
      if (grant === 'password') {
        const { token, scope: granted } = await password(req, params);
        return send(reply, token, granted);
      }
      throw new OAuthError(400, 'unsupported_grant_type', `the grant type ${grant.slice(0, 64)} is not supported: use client_credentials or password`);
    });
  });
}
