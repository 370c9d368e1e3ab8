/**
 * Bearer-token authentication for the cloud directory's APIs (RFC 6750).
 *
 * Every request re-reads the principal the token names: a deleted account, a changed password
 * (token version) or a changed role takes effect on the very next request.
 *
 * - no token                       -> 401 TOKEN_MISSING
 * - bad, expired or revoked token  -> 401 TOKEN_INVALID    (error="invalid_token")
 * - a directory user's token       -> 403 FORBIDDEN        (error="insufficient_scope")
 * - a principal without the role   -> 403 FORBIDDEN        (error="insufficient_scope")
 */
import type { FastifyRequest } from 'fastify';
import type { AccountStore, Principal } from '../accounts/store.js';
import type { Role } from '../accounts/roles.js';
import { ApiError } from './errors.js';
import type { TokenService } from './tokens.js';

const REALM = 'idsync';

export class Guard {
  private readonly verified = new WeakMap<FastifyRequest, Principal>();

  constructor(
    private readonly tokens: TokenService,
    private readonly accounts: AccountStore,
  ) {}

  /** The principal a request's bearer token names, or an ApiError (401/403) to send. */
  async authenticate(req: FastifyRequest, roles: readonly Role[]): Promise<Principal> {
    const principal = this.verified.get(req) ?? (await this.verify(req));
    this.verified.set(req, principal);
    if (!roles.includes(principal.role)) {
      throw new ApiError(403, 'FORBIDDEN', `the role ${principal.role} does not allow this operation`, {
        'www-authenticate': `Bearer realm="${REALM}", error="insufficient_scope"`,
      });
    }
    return principal;
  }

  /** A preHandler-style function for routes that need one of `roles`. */
  require(roles: readonly Role[]): (req: FastifyRequest) => Promise<Principal> {
    return (req) => this.authenticate(req, roles);
  }

  private async verify(req: FastifyRequest): Promise<Principal> {
    const header = req.headers.authorization;
    const m = typeof header === 'string' ? /^Bearer[ ]+([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(header) : null;
    if (!m) {
      if (header === undefined) {
        throw new ApiError(401, 'TOKEN_MISSING', 'this API needs a bearer token: get one from POST /oauth2/token', {
          'www-authenticate': `Bearer realm="${REALM}"`,
        });
      }
      throw new ApiError(401, 'TOKEN_INVALID', 'the Authorization header is not a bearer token', {
        'www-authenticate': `Bearer realm="${REALM}", error="invalid_request"`,
      });
    }
    const token = m[1]!;
    const claims = await this.tokens.verifyApiToken(token);
    if (claims) {
      const current = await this.accounts.principal(claims.kind, claims.name);
      if (current && current.tokenVersion === claims.version) return current;
    } else if (await this.tokens.isUserToken(token)) {
      throw new ApiError(403, 'FORBIDDEN', "a directory user's sign-in token does not open this API", {
        'www-authenticate': `Bearer realm="${REALM}", error="insufficient_scope"`,
      });
    }
    throw new ApiError(401, 'TOKEN_INVALID', 'the token is invalid, expired or revoked: get a new one from POST /oauth2/token', {
      'www-authenticate': `Bearer realm="${REALM}", error="invalid_token"`,
    });
  }
}
