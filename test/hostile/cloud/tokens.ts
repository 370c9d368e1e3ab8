/**
 * Hostile bearer tokens for the corpus (fixtures/auth.json names the kinds). Tokens "signed by the
 * real key" use the running server's own signing key from its cloud.db: what an attacker holding a
 * leaked but otherwise valid token, or a confused client, would present.
 */
import { createHmac } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, decodeJwt, type JWTPayload } from 'jose';
import { loadSigningKeys } from '../../../src/cloud/auth/keys.js';
import { API_AUDIENCE, USER_AUDIENCE } from '../../../src/cloud/auth/tokens.js';
import type { TestCloud } from '../../helpers/cloud.js';

/** What a token kind puts on the request. */
export interface Credential {
  headers: Record<string, string>;
  /** Appended to the URL (access_token in the query). */
  query?: string;
}

const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64url');

export async function buildCredentials(cloud: TestCloud, realToken: string): Promise<Map<string, Credential>> {
  const real = decodeJwt(realToken);
  const keys = await loadSigningKeys(cloud.server.store);
  const nowS = Math.floor(Date.now() / 1000);
  const bearer = (t: string): Credential => ({ headers: { authorization: `Bearer ${t}` } });
  const signReal = async (claims: JWTPayload, opts: { iss?: string; aud?: string; typ?: string; iat?: number; nbf?: number; exp?: number } = {}) =>
    new SignJWT({ ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: keys.kid, typ: opts.typ ?? 'at+jwt' })
      .setIssuer(opts.iss ?? String(real.iss))
      .setAudience(opts.aud ?? API_AUDIENCE)
      .setSubject(String(claims.sub ?? real.sub))
      .setIssuedAt(opts.iat ?? nowS)
      .setNotBefore(opts.nbf ?? opts.iat ?? nowS)
      .setExpirationTime(opts.exp ?? nowS + 600)
      .sign(keys.privateKey);
  const claims: JWTPayload = { idsync_kind: real.idsync_kind, role: real.role, ver: real.ver, sub: real.sub };

  const foreign = await generateKeyPair('ES256', { extractable: true });
  const foreignJwk = await exportJWK(foreign.publicKey);
  const signForeign = (header: Record<string, unknown>) =>
    new SignJWT({ ...claims })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', ...header })
      .setIssuer(String(real.iss))
      .setAudience(API_AUDIENCE)
      .setSubject(String(real.sub))
      .setIssuedAt(nowS)
      .setExpirationTime(nowS + 600)
      .sign(foreign.privateKey);

  const [head, body] = realToken.split('.') as [string, string, string];
  const payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as JWTPayload;
  const unsigned = (header: object, p: object) => `${b64(JSON.stringify(header))}.${b64(JSON.stringify(p))}`;
  const hsInput = unsigned({ alg: 'HS256', kid: keys.kid, typ: 'at+jwt' }, payload);
  const hs = createHmac('sha256', JSON.stringify(keys.jwks)).update(hsInput).digest('base64url');

  const out = new Map<string, Credential>([
    ['none', { headers: {} }],
    ['empty-bearer', { headers: { authorization: 'Bearer ' } }],
    ['garbage', bearer('not-a-jwt')],
    ['basic', { headers: { authorization: `Basic ${Buffer.from(`${cloud.admin.username}:${cloud.admin.password}`).toString('base64')}` } }],
    ['bearer-in-query', { headers: {}, query: `access_token=${realToken}` }],
    ['alg-none', bearer(`${unsigned({ alg: 'none', typ: 'at+jwt' }, payload)}.`)],
    ['hs256-public-key', bearer(`${hsInput}.${hs}`)],
    ['foreign-key', bearer(await signForeign({ kid: keys.kid }))],
    ['jku-header', bearer(await signForeign({ kid: 'attacker', jku: 'http://127.0.0.1:1/jwks.json', jwk: foreignJwk }))],
    ['tampered', bearer(`${head}.${b64(JSON.stringify({ ...payload, sub: 'someone-else' }))}.${realToken.split('.')[2]}`)],
    ['truncated', bearer(`${head}.${body}`)],
    ['expired', bearer(await signReal(claims, { iat: nowS - 7200, exp: nowS - 3600 }))],
    ['not-yet-valid', bearer(await signReal(claims, { nbf: nowS + 86_400, exp: nowS + 90_000 }))],
    ['wrong-issuer', bearer(await signReal(claims, { iss: 'https://evil.example' }))],
    ['wrong-audience', bearer(await signReal(claims, { aud: 'urn:evil:api' }))],
    ['unknown-principal', bearer(await signReal({ ...claims, sub: 'ghost' }))],
    ['stale-version', bearer(await signReal({ ...claims, ver: Number(real.ver) - 1 }))],
    ['user-signin-token', bearer(await signReal({ idsync_kind: 'user', upn: 'seeded', sub: 'some-user-id' }, { aud: USER_AUDIENCE, typ: 'JWT' }))],
    ['oversized', bearer('a'.repeat(8192))],
  ]);
  return out;
}
