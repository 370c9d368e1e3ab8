/**
 * Access tokens: ES256 JWTs signed with the key in cloud.db and verifiable with the JWKS.
 *
 * Two kinds that never stand in for each other:
 *
 * | kind        | typ    | aud                         | sub                     | opens                        |
 * |-------------|--------|-----------------------------|-------------------------|------------------------------|
 * | API token   | at+jwt | urn:idsync:cloud:api        | account name / client id| SCIM, hashes, admin (by role)|
 * | user token  | JWT    | urn:idsync:cloud:signin     | SCIM user id            | nothing here: proof of sign-in for apps |
 *
 * An API token also names its principal's kind and token version (`ver`): it is valid only while
 * that account or client exists with that version, which a password change bumps. The role is
 * read from the store on every request, never trusted from the token.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, jwtVerify, type JWTPayload } from 'jose';
import type { Principal } from '../accounts/store.js';
import { SIGNING_ALG, type SigningKeys } from './keys.js';

export const API_AUDIENCE = 'urn:idsync:cloud:api';
export const USER_AUDIENCE = 'urn:idsync:cloud:signin';
const API_TYP = 'at+jwt';
const USER_TYP = 'JWT';

export interface SignedToken {
  token: string;
  expiresIn: number;
}

export interface SignedInUser {
  id: string;
  userName: string;
  externalId: string | null;
}

export interface ApiTokenClaims {
  kind: Principal['kind'];
  name: string;
  version: number;
}

/** Verified API tokens kept (see TokenService.verified). */
const VERIFIED_CACHE_SIZE = 1024;

export class TokenService {
  /**
   * API tokens whose signature and claims this process has verified, until they expire: an ES256
   * verification costs ~0.2 ms of the main thread, and a sync client sends the same token with
   * every Bulk request of a cycle. Keyed by the whole token, so only those exact bytes hit; the
   * signing keys do not change while the process runs; the principal and its token version are
   * still read from the store on every request (guard.ts), so a revocation holds at once.
   */
  private readonly verified = new Map<string, { claims: ApiTokenClaims; issuer: string; nbf: number; exp: number }>();

  constructor(
    private readonly keys: SigningKeys,
    private readonly issuer: () => string,
    private readonly ttlSeconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  private base(payload: JWTPayload, typ: string, audience: string, subject: string): SignJWT {
    const iat = Math.floor(this.now() / 1000);
    return new SignJWT(payload)
      .setProtectedHeader({ alg: SIGNING_ALG, kid: this.keys.kid, typ })
      .setIssuer(this.issuer())
      .setAudience(audience)
      .setSubject(subject)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + this.ttlSeconds)
      .setJti(randomUUID());
  }

  async issueApiToken(p: Principal): Promise<SignedToken> {
    const payload: JWTPayload = { idsync_kind: p.kind, role: p.role, ver: p.tokenVersion };
    if (p.kind === 'client') payload.client_id = p.name;
    const token = await this.base(payload, API_TYP, API_AUDIENCE, p.name).sign(this.keys.privateKey);
    return { token, expiresIn: this.ttlSeconds };
  }

  async issueUserToken(user: SignedInUser): Promise<SignedToken> {
    const payload: JWTPayload = { upn: user.userName, preferred_username: user.userName, idsync_kind: 'user' };
    if (user.externalId !== null) payload.external_id = user.externalId;
    const token = await this.base(payload, USER_TYP, USER_AUDIENCE, user.id).sign(this.keys.privateKey);
    return { token, expiresIn: this.ttlSeconds };
  }

  /**
   * Verifies an API token's signature, issuer, audience, type and lifetime; returns who it names.
   * Undefined for anything else (including a valid user token: see `isUserToken`).
   */
  async verifyApiToken(token: string): Promise<ApiTokenClaims | undefined> {
    const nowSeconds = Math.floor(this.now() / 1000);
    const known = this.verified.get(token);
    if (known) {
      // jose's rules: expired when exp <= now, not yet valid when nbf > now.
      if (known.issuer === this.issuer() && known.nbf <= nowSeconds && nowSeconds < known.exp) return known.claims;
      this.verified.delete(token);
    }
    try {
      const { payload } = await jwtVerify(token, this.keys.keySet, {
        algorithms: [SIGNING_ALG],
        issuer: this.issuer(),
        audience: API_AUDIENCE,
        typ: API_TYP,
        currentDate: new Date(this.now()),
        requiredClaims: ['sub', 'exp', 'iat'],
      });
      const kind = payload.idsync_kind;
      if ((kind !== 'account' && kind !== 'client') || typeof payload.sub !== 'string' || typeof payload.ver !== 'number') return undefined;
      const claims: ApiTokenClaims = { kind, name: payload.sub, version: payload.ver };
      if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, { claims, issuer: this.issuer(), nbf: payload.nbf ?? Number.NEGATIVE_INFINITY, exp: payload.exp! });
      return claims;
    } catch {
      return undefined;
    }
  }

  /** True for a valid, unexpired sign-in token of a directory user (which opens no API here). */
  async isUserToken(token: string): Promise<boolean> {
    try {
      await jwtVerify(token, this.keys.keySet, {
        algorithms: [SIGNING_ALG],
        issuer: this.issuer(),
        audience: USER_AUDIENCE,
        typ: USER_TYP,
        currentDate: new Date(this.now()),
      });
      return true;
    } catch {
      return false;
    }
  }
}
