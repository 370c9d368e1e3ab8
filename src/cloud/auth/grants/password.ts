/**
 * grant_type=password (RFC 6749 §4.3): username + password → API token or user token.
 *
 * Two namespaces answer it, and they never mix:
 * - cloud accounts (administrators, sync accounts) get an API token for SCIM / hashes / admin;
 * - synced directory users (their SCIM userName, i.e. the on-premises userPrincipalName) are
 *   checked against their synced OrgId hash and get a user token that opens no API here.
 * `scope=idsync.api` asks for the account namespace, `scope=openid` or `idsync.signin` for the
 * directory; without a scope a name that is a cloud account is an account sign-in, any other name
 * a directory sign-in. A sync account is never a directory user and vice versa: a failed account
 * sign-in does not fall back to a directory user of the same name.
 */
import type { FastifyRequest } from 'fastify';
import { verifyOrgIdHash } from '../../../passwords/hash.js';
import type { AuditReason } from '../../audit/store.js';
import { findUserForSignIn } from '../../scim/index.js';
import { OAuthError } from '../errors.js';
import type { SignedToken } from '../tokens.js';
import { API_SCOPE, BAD_USER_CREDENTIALS, reasonOf, required, SIGNIN_SCOPES, type Grant, type GrantContext } from './context.js';

/** Checked when a directory user has no hash, so that case costs what a wrong password costs. */
const DUMMY_ORGID_HASH = `v1;PPH1_MD4,${'0'.repeat(20)},1000,${'0'.repeat(64)};`;

async function accountPassword(ctx: GrantContext, req: FastifyRequest, username: string, password: string): Promise<SignedToken> {
  const { accounts, tokens } = ctx.deps;
  const refuse = () => new OAuthError(400, 'invalid_grant', BAD_USER_CREDENTIALS);
  const stamp = () => accounts.credentialStamp('account', username);
  const principal = await ctx.guarded(req, { key: `account:${username}`, subject: username, secret: password, stamp, type: 'token', details: { grant: 'password' }, refuse }, async () => {
    const check = await accounts.checkAccountPassword(username, password);
    return { reason: reasonOf(check, 'unknown_user', 'bad_password'), value: check.ok ? check.principal : undefined };
  });
  return tokens.issueApiToken(principal);
}

async function userPassword(ctx: GrantContext, req: FastifyRequest, userName: string, password: string): Promise<SignedToken> {
  const { db, hashes, tokens } = ctx.deps;
  const refuse = () => new OAuthError(400, 'invalid_grant', BAD_USER_CREDENTIALS);
  // The user, whether it may sign in, and its hash: a change of any lets a remembered wrong password be tried again.
  const stamp = async () => {
    const user = await findUserForSignIn(db, userName);
    return user ? `${user.id}\0${String(user.active)}\0${(await hashes.hashFor(user.id)) ?? ''}` : '';
  };
  const current = await ctx.guarded(req, { key: `user:${userName}`, subject: userName, secret: password, stamp, type: 'signin', refuse }, async () => {
    const user = await findUserForSignIn(db, userName);
    const hash = user ? await hashes.hashFor(user.id) : undefined;
    // Always one hash check, so that every failure costs the same.
    const matches = await verifyOrgIdHash(password, hash ?? DUMMY_ORGID_HASH);
    // Re-read: the user may have been disabled or deleted while we hashed.
    const now = user && (await findUserForSignIn(db, userName));
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

export const passwordGrant: Grant = {
  type: 'password',
  async handle(ctx, req, params) {
    const username = required(params, 'username');
    const pw = required(params, 'password');
    const scopes = (params.scope ?? '').split(' ').filter(Boolean);
    const wantsApi = scopes.includes(API_SCOPE);
    const wantsSignin = scopes.some((s) => SIGNIN_SCOPES.includes(s));
    if (wantsApi && wantsSignin) throw new OAuthError(400, 'invalid_scope', `ask for ${API_SCOPE} or a sign-in scope, not both`);
    const unknown = scopes.find((s) => s !== API_SCOPE && !SIGNIN_SCOPES.includes(s));
    if (unknown !== undefined) throw new OAuthError(400, 'invalid_scope', `unknown scope ${unknown.slice(0, 64)}`);
    const asAccount = wantsApi || (!wantsSignin && (await ctx.deps.accounts.hasAccount(username)));
    return asAccount
      ? { token: await accountPassword(ctx, req, username, pw), scope: API_SCOPE }
      : { token: await userPassword(ctx, req, username, pw), scope: wantsSignin ? scopes.join(' ') : 'idsync.signin' };
  },
};
