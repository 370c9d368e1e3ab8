/**
 * A small client for the cloud directory's admin API, used by `idsync demo`, the CLI and tests
 * to provision the sync service's account. Secrets are returned to the caller, never printed.
 */
import { request } from 'undici';
import { IdsyncError } from '../core/errors.js';

export type OAuthGrant =
  | { grant_type: 'password'; username: string; password: string }
  | { grant_type: 'client_credentials'; client_id: string; client_secret: string };

/** Obtains an access token; throws CLOUD_AUTH_FAILED (without the secret) when refused. */
export async function fetchToken(url: string, grant: OAuthGrant): Promise<string> {
  const res = await request(`${url}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(grant as unknown as Record<string, string>).toString(),
  });
  const body = (await res.body.json()) as { access_token?: string; error?: string };
  if (!body.access_token) {
    throw new IdsyncError('CLOUD_AUTH_FAILED', `the cloud directory refused the credential (HTTP ${res.statusCode}, ${body.error ?? 'no error code'})`, {
      hint: 'Check the user name or client id and its secret.',
    });
  }
  return body.access_token;
}

/** Creates an OAuth client with the DirectorySynchronizationAccounts role; returns its secret. */
export async function createSyncClient(url: string, admin: { username: string; password: string }, clientId: string): Promise<string> {
  const token = await fetchToken(url, { grant_type: 'password', username: admin.username, password: admin.password });
  const res = await request(`${url}/admin/v1/clients`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ clientId, role: 'DirectorySynchronizationAccounts' }),
  });
  const body = (await res.body.json()) as { clientSecret?: string; detail?: string; message?: string };
  if (res.statusCode !== 201 || !body.clientSecret) {
    throw new IdsyncError('CLOUD_REJECTED', `the cloud directory did not create client "${clientId}" (HTTP ${res.statusCode}): ${body.message ?? body.detail ?? ''}`);
  }
  return body.clientSecret;
}
