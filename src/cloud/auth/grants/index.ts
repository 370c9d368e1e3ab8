/**
 * The grants of POST /oauth2/token, one file each. To add a grant: write its file (a `Grant`, see
 * context.ts) and list it here; the endpoint and the authorization-server metadata follow.
 */
import { clientCredentialsGrant } from './client-credentials.js';
import type { Grant } from './context.js';
import { passwordGrant } from './password.js';

export const GRANTS: readonly Grant[] = [clientCredentialsGrant, passwordGrant];

/** The grant_type values, for the metadata (grant_types_supported) and error messages. */
export const GRANT_TYPES: readonly string[] = GRANTS.map((g) => g.type);

export { API_SCOPE, SIGNIN_SCOPES, grantContext, type Grant, type GrantContext, type Params, type TokenEndpointDeps } from './context.js';
