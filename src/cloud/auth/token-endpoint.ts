/**
 * POST /oauth2/token (RFC 6749 §4.3, §4.4), bodies form-encoded or JSON. Each grant_type is a file
 * of grants/ (listed in grants/index.ts); this module reads the parameters and dispatches:
 *
 * grant_type=client_credentials  client_id + client_secret (body or HTTP Basic)  -> API token      (grants/client-credentials.ts)
 * grant_type=password            username + password                             -> API token or user token (grants/password.ts)
 *
 * Every failure of a credential answers the same `invalid_grant` / `invalid_client`, whatever the
 * cause (unknown name, wrong password, no hash, disabled); the audit log keeps the cause. The one
 * exception is a lockout, where the password was not checked: that answer says so, with the time
 * left (`error_codes: [50053]`, `lockout.remaining_seconds`, `Retry-After`), for every grant.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { OAuthError } from './errors.js';
import { GRANT_TYPES, GRANTS, grantContext, type Params, type TokenEndpointDeps } from './grants/index.js';
import { required } from './grants/context.js';
import type { SignedToken } from './tokens.js';

export { API_SCOPE, SIGNIN_SCOPES, type TokenEndpointDeps } from './grants/index.js';

const MAX_PARAM = 1024;

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

function send(reply: FastifyReply, token: SignedToken, scope: string) {
  reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
  return { access_token: token.token, token_type: 'Bearer', expires_in: token.expiresIn, scope };
}

export function registerTokenEndpoint(app: FastifyInstance, deps: TokenEndpointDeps): void {
  const ctx = grantContext(deps);

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
      const type = required(params, 'grant_type');
      const grant = GRANTS.find((g) => g.type === type);
      if (!grant) throw new OAuthError(400, 'unsupported_grant_type', `the grant type ${type.slice(0, 64)} is not supported: use ${GRANT_TYPES.join(' or ')}`);
      const { token, scope: granted } = await grant.handle(ctx, req, params);
      return send(reply, token, granted);
    });
  });
}
