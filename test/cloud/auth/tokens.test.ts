/** Token endpoint (RFC 6749) and bearer-token access to SCIM and the admin API, per grant and role. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CloudServer } from '../../../src/cloud/server.js';
import { ADMIN_PASSWORD, ADMIN_USER, accountToken, call, createAccount, createScimUser, fakeClock, sendHashes, start, tempDir, tokenRequest } from './helpers.js';
import { orgIdHash } from '../../../src/passwords/hash.js';

const SYNC_USER = 'sync1';
const SYNC_PASSWORD = 'sync-password-0001';

describe('token endpoint and API access', () => {
  const tmp = tempDir();
  const clock = fakeClock();
  let server: CloudServer;
  let admin: string;

  before(async () => {
    server = await start(tmp.dir, { now: clock.now, tokenTtlSeconds: 600 });
    admin = await accountToken(server);
    await createAccount(server, admin, SYNC_USER, SYNC_PASSWORD, 'sync');
  });
  after(async () => {
    await server.close();
    tmp.cleanup();
  });

  test('password grant for the administrator returns a Bearer API token, not cacheable', async () => {
    const res = await tokenRequest(server, { grant_type: 'password', username: ADMIN_USER, password: ADMIN_PASSWORD });
    assert.equal(res.status, 200);
    assert.equal(res.body.token_type, 'Bearer');
    assert.equal(res.body.expires_in, 600);
    assert.equal(res.body.scope, 'idsync.api');
    assert.match(res.body.access_token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    assert.equal(res.headers['cache-control'], 'no-store');
  });

  test('a JSON body works like a form body', async () => {
    const res = await call(server, 'POST', '/oauth2/token', { json: { grant_type: 'password', username: SYNC_USER, password: SYNC_PASSWORD } });
    assert.equal(res.status, 200);
    assert.equal(typeof res.body.access_token, 'string');
  });

  test('a sync account token opens SCIM and password hashes but not the admin API', async () => {
    const sync = await accountToken(server, SYNC_USER, SYNC_PASSWORD);
    assert.equal((await call(server, 'GET', '/scim/v2/ServiceProviderConfig', { token: sync })).status, 200);
    const hashes = await sendHashes(server, sync, [{ externalId: 'nobody', hash: await orgIdHash('x') }]);
    assert.equal(hashes.status, 200);
    const adminApi = await call(server, 'GET', '/admin/v1/accounts', { token: sync });
    assert.equal(adminApi.status, 403);
    assert.equal(adminApi.body.error.code, 'FORBIDDEN');
    assert.match(String(adminApi.headers['www-authenticate']), /insufficient_scope/);
  });

  test('an administrator token opens SCIM and the admin API', async () => {
    assert.equal((await call(server, 'GET', '/scim/v2/ServiceProviderConfig', { token: admin })).status, 200);
    assert.equal((await call(server, 'GET', '/admin/v1/accounts', { token: admin })).status, 200);
  });

  test('client_credentials with the secret in the body or in HTTP Basic; the role decides access', async () => {
    const created = await call(server, 'POST', '/admin/v1/clients', { token: admin, json: { clientId: 'idsync', role: 'DirectorySynchronizationAccounts' } });
    assert.equal(created.status, 201);
    const secret = created.body.clientSecret as string;
    assert.ok(secret.length >= 40);

    const body = await tokenRequest(server, { grant_type: 'client_credentials', client_id: 'idsync', client_secret: secret });
    assert.equal(body.status, 200);
    const basicAuth = Buffer.from(`idsync:${encodeURIComponent(secret)}`).toString('base64');
    const basic = await tokenRequest(server, { grant_type: 'client_credentials' }, { headers: { authorization: `Basic ${basicAuth}` } });
    assert.equal(basic.status, 200);

    assert.equal((await call(server, 'GET', '/scim/v2/ServiceProviderConfig', { token: basic.body.access_token })).status, 200);
    assert.equal((await call(server, 'GET', '/admin/v1/accounts', { token: body.body.access_token })).status, 403);

    const list = await call(server, 'GET', '/admin/v1/clients', { token: admin });
    assert.deepEqual(list.body.clients.map((c: { clientId: string }) => c.clientId), ['idsync']);
    assert.ok(!list.text.includes(secret), 'the client list never shows the secret');

    // Deleting the client revokes its tokens at once.
    assert.equal((await call(server, 'DELETE', '/admin/v1/clients/idsync', { token: admin })).status, 204);
    assert.equal((await call(server, 'GET', '/scim/v2/ServiceProviderConfig', { token: basic.body.access_token })).status, 401);
  });

  test('a wrong client secret is invalid_client (401), with WWW-Authenticate for Basic', async () => {
    await call(server, 'POST', '/admin/v1/clients', { token: admin, json: { clientId: 'c2', role: 'sync' } });
    const res = await tokenRequest(server, { grant_type: 'client_credentials', client_id: 'c2', client_secret: 'wrong' });
    assert.equal(res.status, 401);
    assert.deepEqual(Object.keys(res.body).sort(), ['error', 'error_description']);
    assert.equal(res.body.error, 'invalid_client');
    const unknown = await tokenRequest(server, { grant_type: 'client_credentials', client_id: 'nope', client_secret: 'wrong' });
    assert.deepEqual(unknown.body, res.body, 'an unknown client gets the very same answer');
    const basic = await tokenRequest(
      server,
      { grant_type: 'client_credentials' },
      { headers: { authorization: `Basic ${Buffer.from('c2:wrong').toString('base64')}` } },
    );
    assert.equal(basic.status, 401);
    assert.match(String(basic.headers['www-authenticate']), /^Basic/);
  });

  test('a wrong password and an unknown account get the same invalid_grant (400)', async () => {
    const wrong = await tokenRequest(server, { grant_type: 'password', username: SYNC_USER, password: 'not-the-password', scope: 'idsync.api' });
    const unknown = await tokenRequest(server, { grant_type: 'password', username: 'ghost', password: 'not-the-password', scope: 'idsync.api' });
    assert.equal(wrong.status, 400);
    assert.equal(wrong.body.error, 'invalid_grant');
    assert.deepEqual(unknown.body, wrong.body);
    assert.equal(unknown.status, wrong.status);
  });

  test('malformed requests: unsupported_grant_type and invalid_request', async () => {
    const grant = await tokenRequest(server, { grant_type: 'authorization_code', code: 'x' });
    assert.equal(grant.status, 400);
    assert.equal(grant.body.error, 'unsupported_grant_type');
    const missing = await tokenRequest(server, { grant_type: 'password', username: SYNC_USER });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.error, 'invalid_request');
    const noGrant = await tokenRequest(server, { username: SYNC_USER });
    assert.equal(noGrant.body.error, 'invalid_request');
    const repeated = await call(server, 'POST', '/oauth2/token', {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      raw: `grant_type=password&username=${SYNC_USER}&password=a&password=b`,
    });
    assert.equal(repeated.status, 400);
    assert.equal(repeated.body.error, 'invalid_request');
    const badJson = await call(server, 'POST', '/oauth2/token', { headers: { 'content-type': 'application/json' }, raw: '{"grant_type": "pass' });
    assert.equal(badJson.status, 400);
    assert.equal(badJson.body.error, 'invalid_request');
  });

  test('SCIM refuses a missing, malformed, forged or expired token with 401 in SCIM format', async () => {
    const missing = await call(server, 'GET', '/scim/v2/ServiceProviderConfig');
    assert.equal(missing.status, 401);
    assert.deepEqual(missing.body.schemas, ['urn:ietf:params:scim:api:messages:2.0:Error']);
    assert.equal(missing.body.status, '401');
    assert.match(String(missing.headers['www-authenticate']), /^Bearer realm="idsync"/);

    const garbage = await call(server, 'GET', '/scim/v2/Users', { token: 'not.a.token' });
    assert.equal(garbage.status, 401);
    assert.match(String(garbage.headers['www-authenticate']), /error="invalid_token"/);

    // Same token with one signature character changed.
    const sig = admin.slice(admin.lastIndexOf('.') + 1);
    const forged = admin.slice(0, admin.lastIndexOf('.') + 1) + (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
    assert.equal((await call(server, 'GET', '/scim/v2/Users', { token: forged })).status, 401);

    const basic = await call(server, 'GET', '/scim/v2/Users', { headers: { authorization: `Basic ${Buffer.from(`${ADMIN_USER}:${ADMIN_PASSWORD}`).toString('base64')}` } });
    assert.equal(basic.status, 401);

    const shortLived = await accountToken(server, SYNC_USER, SYNC_PASSWORD);
    assert.equal((await call(server, 'GET', '/scim/v2/ServiceProviderConfig', { token: shortLived })).status, 200);
    clock.advance(601_000);
    const expired = await call(server, 'GET', '/scim/v2/ServiceProviderConfig', { token: shortLived });
    assert.equal(expired.status, 401);
    assert.match(String(expired.headers['www-authenticate']), /error="invalid_token"/);
    admin = await accountToken(server);
  });

  test('a token signed by a different server (other keys) is refused', async () => {
    const other = tempDir();
    const s2 = await start(other.dir);
    try {
      const foreign = await accountToken(s2);
      assert.equal((await call(server, 'GET', '/admin/v1/accounts', { token: foreign })).status, 401);
    } finally {
      await s2.close();
      other.cleanup();
    }
  });

  test('a directory user sign-in token opens neither SCIM, the hash API nor the admin API (403)', async () => {
    await createScimUser(server, admin, { userName: 'alice@example.com', externalId: 'ext-alice' });
    await sendHashes(server, admin, [{ externalId: 'ext-alice', hash: await orgIdHash('Alice-pw-1') }]);
    const signin = await tokenRequest(server, { grant_type: 'password', username: 'alice@example.com', password: 'Alice-pw-1' });
    assert.equal(signin.status, 200);
    const userToken = signin.body.access_token as string;
    for (const [method, path] of [
      ['GET', '/scim/v2/Users'],
      ['GET', '/admin/v1/accounts'],
      ['POST', '/api/v1/passwordHashes'],
    ] as const) {
      const res = await call(server, method, path, { token: userToken, json: method === 'POST' ? { items: [] } : undefined });
      assert.equal(res.status, 403, `${method} ${path}`);
    }
  });

  test('a cloud account name cannot be taken by a new account nor collide with a directory user', async () => {
    const dup = await call(server, 'POST', '/admin/v1/accounts', { token: admin, json: { username: 'SYNC1', password: SYNC_PASSWORD, role: 'sync' } });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.code, 'ACCOUNT_EXISTS');
    const user = await call(server, 'POST', '/admin/v1/accounts', { token: admin, json: { username: 'alice@example.com', password: SYNC_PASSWORD, role: 'sync' } });
    assert.equal(user.status, 409);
    assert.equal(user.body.error.code, 'NAME_TAKEN_BY_USER');
    const weak = await call(server, 'POST', '/admin/v1/accounts', { token: admin, json: { username: 'weak', password: 'short', role: 'sync' } });
    assert.equal(weak.status, 400);
    assert.equal(weak.body.error.code, 'VALIDATION_FAILED');
    const role = await call(server, 'POST', '/admin/v1/accounts', { token: admin, json: { username: 'norole', password: SYNC_PASSWORD, role: 'root' } });
    assert.equal(role.status, 400);
  });
});

describe('changing a sync account password (KB 2962509)', () => {
  const tmp = tempDir();
  let server: CloudServer;

  before(async () => {
    server = await start(tmp.dir);
  });
  after(async () => {
    await server.close();
    tmp.cleanup();
  });

  test('the old token and the old password stop working; the new password works', async () => {
    const admin = await accountToken(server);
    await createAccount(server, admin, SYNC_USER, SYNC_PASSWORD, 'sync');
    const oldToken = await accountToken(server, SYNC_USER, SYNC_PASSWORD);
    assert.equal((await call(server, 'GET', '/scim/v2/ServiceProviderConfig', { token: oldToken })).status, 200);

    const changed = await call(server, 'PATCH', `/admin/v1/accounts/${SYNC_USER}`, { token: admin, json: { password: 'sync-password-0002' } });
    assert.equal(changed.status, 200);
    assert.equal(changed.body.username, SYNC_USER);
    assert.equal(changed.body.password, undefined);

    const withOldToken = await call(server, 'GET', '/scim/v2/ServiceProviderConfig', { token: oldToken });
    assert.equal(withOldToken.status, 401, 'the token issued before the change is revoked');
    const hashesWithOldToken = await sendHashes(server, oldToken, [{ externalId: 'x', hash: await orgIdHash('x') }]);
    assert.equal(hashesWithOldToken.status, 401);

    const oldPassword = await tokenRequest(server, { grant_type: 'password', username: SYNC_USER, password: SYNC_PASSWORD });
    assert.equal(oldPassword.status, 400);
    assert.equal(oldPassword.body.error, 'invalid_grant');

    const newToken = await accountToken(server, SYNC_USER, 'sync-password-0002');
    assert.equal((await call(server, 'GET', '/scim/v2/ServiceProviderConfig', { token: newToken })).status, 200);
  });

  test('a deleted account is refused at once; the last administrator cannot be deleted', async () => {
    const admin = await accountToken(server);
    await createAccount(server, admin, 'temp', 'temp-password-001', 'sync');
    const t = await accountToken(server, 'temp', 'temp-password-001');
    assert.equal((await call(server, 'DELETE', '/admin/v1/accounts/temp', { token: admin })).status, 204);
    assert.equal((await call(server, 'GET', '/scim/v2/ServiceProviderConfig', { token: t })).status, 401);
    const last = await call(server, 'DELETE', `/admin/v1/accounts/${ADMIN_USER}`, { token: admin });
    assert.equal(last.status, 409);
    assert.equal(last.body.error.code, 'LAST_ADMINISTRATOR');
    assert.equal((await call(server, 'DELETE', '/admin/v1/accounts/nobody', { token: admin })).status, 404);
  });

  test("a deleted account's or client's token stays refused when one of the same name is created again", async () => {
    const admin = await accountToken(server);
    await createAccount(server, admin, 'again', 'again-password-001', 'admin');
    const old = await accountToken(server, 'again', 'again-password-001');
    assert.equal((await call(server, 'DELETE', '/admin/v1/accounts/again', { token: admin })).status, 204);
    // Someone else's account under the same name (its own password): the first one's token must not
    // open it (on the old code token versions started at 1 again, and the old token had version 1).
    await createAccount(server, admin, 'again', 'someone-else-0002', 'admin');
    assert.equal((await call(server, 'GET', '/admin/v1/accounts', { token: old })).status, 401);
    assert.equal((await call(server, 'GET', '/admin/v1/accounts', { token: await accountToken(server, 'again', 'someone-else-0002') })).status, 200);

    const first = await call(server, 'POST', '/admin/v1/clients', { token: admin, json: { clientId: 'again-client', role: 'DirectorySynchronizationAccounts' } });
    const oldClient = await tokenRequest(server, { grant_type: 'client_credentials', client_id: 'again-client', client_secret: first.body.clientSecret });
    assert.equal(oldClient.status, 200);
    assert.equal((await call(server, 'DELETE', '/admin/v1/clients/again-client', { token: admin })).status, 204);
    assert.equal((await call(server, 'POST', '/admin/v1/clients', { token: admin, json: { clientId: 'again-client', role: 'GlobalAdministrator' } })).status, 201);
    assert.equal((await call(server, 'GET', '/scim/v2/ServiceProviderConfig', { token: oldClient.body.access_token })).status, 401);
  });

  test('a role change takes effect on the next request of an existing token', async () => {
    const admin = await accountToken(server);
    await createAccount(server, admin, 'promoted', 'promoted-password', 'sync');
    const t = await accountToken(server, 'promoted', 'promoted-password');
    assert.equal((await call(server, 'GET', '/admin/v1/accounts', { token: t })).status, 403);
    assert.equal((await call(server, 'PATCH', '/admin/v1/accounts/promoted', { token: admin, json: { role: 'admin' } })).status, 200);
    assert.equal((await call(server, 'GET', '/admin/v1/accounts', { token: t })).status, 200);
  });
});
