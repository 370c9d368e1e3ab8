/** grant_type=client_credentials (RFC 6749 §4.4): client_id + client_secret, in the body or in HTTP Basic → API token. */
import type { FastifyRequest } from 'fastify';
import { OAuthError } from '../errors.js';
import { API_SCOPE, reasonOf, required, type Grant } from './context.js';

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

export const clientCredentialsGrant: Grant = {
  type: 'client_credentials',
  async handle(ctx, req, params) {
    const { accounts, tokens } = ctx.deps;
    const basic = basicCredentials(req);
    if (basic && (params.client_id !== undefined || params.client_secret !== undefined)) {
      throw new OAuthError(400, 'invalid_request', 'send the client credentials once: in the Authorization header or in the body');
    }
    const id = basic?.id ?? required(params, 'client_id');
    const secret = basic?.secret ?? required(params, 'client_secret');
    const invalid = () => new OAuthError(401, 'invalid_client', 'client authentication failed', basic ? { 'www-authenticate': 'Basic realm="idsync"' } : {});
    const stamp = () => accounts.credentialStamp('client', id);
    const principal = await ctx.guarded(req, { key: `client:${id}`, subject: id, secret, stamp, type: 'token', details: { grant: 'client_credentials' }, refuse: invalid }, async () => {
      const check = await accounts.checkClientSecret(id, secret);
      return { reason: reasonOf(check, 'unknown_client', 'bad_client_secret'), value: check.ok ? check.principal : undefined };
    });
    return { token: await tokens.issueApiToken(principal), scope: API_SCOPE };
  },
};
