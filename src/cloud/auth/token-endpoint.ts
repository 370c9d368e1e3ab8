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
 * cause (unknown name, wrong password, no hash, disabled, locked out); the audit log keeps the cause.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { verifyOrgIdHash } from '../../passwords/hash.js';
import type { Database } from '../../store/database.js';
import type { AccountStore, CredentialCheck } from '../accounts/store.js';
import type { AuditLog, AuditReason } from '../audit/store.js';
import type { PasswordHashStore } from '../passwords/store.js';
import { findUserForSignIn } from '../scim/index.js';
import { OAuthError } from './errors.js';
import type { LockState, Lockout } from './lockout.js';
import type { SignedToken, TokenService } from './tokens.js';

export const API_SCOPE = 'idsync.api';
export const SIGNIN_SCOPES = ['openid', 'idsync.signin'];

/** Checked when a directory user has no hash, so that case costs what a wrong password costs. */
const DUMMY_ORGID_HASH = `v1;PPH1_MD4,${'0'.repeat(20)},1000,${'0'.repeat(64)};`;
const MAX_PARAM = 1024;

export interface TokenEndpointDeps {
  db: Database;
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

  const lockedReason = (s: LockState): AuditReason => (s.locked && s.scope === 'global' ? 'locked_out_global' : 'locked_out');

  async function clientCredentials(req: FastifyRequest, params: Params): Promise<SignedToken> {
    const basic = basicCredentials(req);
    if (basic && (params.client_id !== undefined || params.client_secret !== undefined)) {
      throw new OAuthError(400, 'invalid_request', 'send the client credentials once: in the Authorization header or in the body');
    }
    const id = basic?.id ?? required(params, 'client_id');
    const secret = basic?.secret ?? required(params, 'client_secret');
    const invalid = () =>
      new OAuthError(401, 'invalid_client', 'client authentication failed', basic ? { 'www-authenticate': 'Basic realm="idsync"' } : {});
    const key = `client:${id}`;
    const state = lockout.check(key, req.ip);
    if (state.locked) {
      audit.record({ type: 'token', subject: id, ip: req.ip, result: 'failure', reason: lockedReason(state), details: { grant: 'client_credentials' } });
      throw invalid();
    }
    const check = await accounts.checkClientSecret(id, secret);
    audit.record({
      type: 'token',
      subject: id,
      ip: req.ip,
      result: check.ok ? 'success' : 'failure',
      reason: reasonOf(check, 'unknown_client', 'bad_client_secret'),
      details: { grant: 'client_credentials' },
    });
    if (!check.ok) {
      lockout.recordFailure(key, req.ip);
      throw invalid();
    }
    lockout.recordSuccess(key, req.ip);
    return tokens.issueApiToken(check.principal);
  }

  async function accountPassword(req: FastifyRequest, username: string, password: string): Promise<SignedToken> {
    const key = `account:${username}`;
    const state = lockout.check(key, req.ip);
    if (state.locked) {
      audit.record({ type: 'token', subject: username, ip: req.ip, result: 'failure', reason: lockedReason(state), details: { grant: 'password' } });
      throw new OAuthError(400, 'invalid_grant', BAD_USER_CREDENTIALS);
    }
    const check = await accounts.checkAccountPassword(username, password);
    audit.record({
      type: 'token',
      subject: username,
      ip: req.ip,
      result: check.ok ? 'success' : 'failure',
      reason: reasonOf(check, 'unknown_user', 'bad_password'),
      details: { grant: 'password' },
    });
    if (!check.ok) {
      lockout.recordFailure(key, req.ip);
      throw new OAuthError(400, 'invalid_grant', BAD_USER_CREDENTIALS);
    }
    lockout.recordSuccess(key, req.ip);
    return tokens.issueApiToken(check.principal);
  }

  async function userPassword(req: FastifyRequest, userName: string, password: string): Promise<SignedToken> {
    const key = `user:${userName}`;
    const state = lockout.check(key, req.ip);
    if (state.locked) {
      audit.record({ type: 'signin', subject: userName, ip: req.ip, result: 'failure', reason: lockedReason(state) });
      throw new OAuthError(400, 'invalid_grant', BAD_USER_CREDENTIALS);
    }
    const user = findUserForSignIn(deps.db, userName);
    const hash = user ? deps.hashes.hashFor(user.id) : undefined;
    // Always one hash check, so that every failure costs the same.
    const matches = await verifyOrgIdHash(password, hash ?? DUMMY_ORGID_HASH);
    // Re-read: the user may have been disabled or deleted while we hashed.
    const current = user && findUserForSignIn(deps.db, userName);
    let reason: AuditReason;
    if (!user || !current || current.id !== user.id) reason = 'unknown_user';
    else if (!current.active) reason = 'user_disabled';
    else if (hash === undefined) reason = 'no_password_hash';
    else if (!matches) reason = 'bad_password';
    else reason = 'success';
    const details = current ? { userId: current.id } : undefined;
    if (reason !== 'success' || !current) {
      audit.record({ type: 'signin', subject: userName, ip: req.ip, result: 'failure', reason, details });
      lockout.recordFailure(key, req.ip);
      throw new OAuthError(400, 'invalid_grant', BAD_USER_CREDENTIALS);
    }
    audit.record({ type: 'signin', subject: userName, ip: req.ip, result: 'success', reason, details });
    lockout.recordSuccess(key, req.ip);
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
    const asAccount = wantsApi || (!wantsSignin && accounts.hasAccount(username));
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
