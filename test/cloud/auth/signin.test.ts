/** Password hash intake and the sign-in of synced directory users against their OrgId hash. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import type { CloudServer } from '../../../src/cloud/server.js';
import { orgIdHash } from '../../../src/passwords/hash.js';
import { accountToken, call, createScimUser, sendHashes, setScimActive, start, tempDir, tokenRequest } from './helpers.js';

describe('password hash intake and directory sign-in', () => {
  const tmp = tempDir();
  let server: CloudServer;
  let admin: string;
  const ids: Record<string, string> = {};

  before(async () => {
    server = await start(tmp.dir);
    admin = await accountToken(server);
    for (const [name, ext] of [
      ['alice@example.com', 'ext-alice'],
      ['bob@example.com', 'ext-bob'],
      ['carol@example.com', 'ext-carol'],
      ['dave@example.com', 'ext-dave'],
      ['erin@example.com', 'ext-erin'],
    ] as const) {
      ids[ext] = await createScimUser(server, admin, { userName: name, externalId: ext });
    }
  });
  after(async () => {
    await server.close();
    tmp.cleanup();
  });

  const signIn = (username: string, password: string) => tokenRequest(server, { grant_type: 'password', username, password });

  test('a batch answers Success, TargetNotExported and InvalidHash per item, in order', async () => {
    const res = await sendHashes(server, admin, [
      { externalId: 'ext-alice', hash: await orgIdHash('Correct horse 1') },
      { externalId: 'ext-unknown', hash: await orgIdHash('whatever') },
      { externalId: 'ext-bob', hash: 'v1;PPH1_MD4,zz,1000,abc;' },
      { externalId: 'ext-bob', hash: 'plaintext-password' },
      { externalId: 'ext-bob', hash: await orgIdHash('Bob pw'), changedAt: 'not a date' },
    ]);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      results: [
        { externalId: 'ext-alice', status: 'Success' },
        { externalId: 'ext-unknown', status: 'TargetNotExported' },
        { externalId: 'ext-bob', status: 'InvalidHash' },
        { externalId: 'ext-bob', status: 'InvalidHash' },
        { externalId: 'ext-bob', status: 'InvalidHash' },
      ],
    });
  });

  test('the batch size is 1 to 1000 items and the body is validated', async () => {
    assert.equal((await sendHashes(server, admin, [])).status, 400);
    const hash = await orgIdHash('x');
    const big = Array.from({ length: 1001 }, (_, i) => ({ externalId: `e${i}`, hash }));
    const tooMany = await sendHashes(server, admin, big);
    assert.equal(tooMany.status, 400);
    assert.equal(tooMany.body.error.code, 'VALIDATION_FAILED');
    const full = await sendHashes(server, admin, big.slice(0, 1000));
    assert.equal(full.status, 200);
    assert.equal(full.body.results.length, 1000);
    const noExternalId = await call(server, 'POST', '/api/v1/passwordHashes', { token: admin, json: { items: [{ hash }] } });
    assert.equal(noExternalId.status, 400);
  });

  test('the hash API needs a token', async () => {
    const res = await call(server, 'POST', '/api/v1/passwordHashes', { json: { items: [{ externalId: 'ext-alice', hash: await orgIdHash('x') }] } });
    assert.equal(res.status, 401);
    assert.equal(res.body.error.code, 'TOKEN_MISSING');
  });

  test('the right password signs in (user name case-insensitive); a wrong one does not', async () => {
    const ok = await signIn('Alice@Example.com', 'Correct horse 1');
    assert.equal(ok.status, 200);
    assert.equal(ok.body.token_type, 'Bearer');
    const wrong = await signIn('alice@example.com', 'correct horse 1');
    assert.equal(wrong.status, 400);
    assert.deepEqual(wrong.body, { error: 'invalid_grant', error_description: 'the user name or password is incorrect' });
  });

  test('a hash with 100 iterations (older incumbent builds) verifies', async () => {
    const hash = await orgIdHash('Legacy pass 100', { iterations: 100 });
    assert.match(hash, /,100,/);
    assert.deepEqual((await sendHashes(server, admin, [{ externalId: 'ext-carol', hash }])).body.results[0].status, 'Success');
    assert.equal((await signIn('carol@example.com', 'Legacy pass 100')).status, 200);
    assert.equal((await signIn('carol@example.com', 'Legacy pass 101')).status, 400);
  });

  test('the sign-in token is an ES256 JWT that verifies against the JWKS, with iss, sub, aud, exp and upn', async () => {
    const res = await signIn('alice@example.com', 'Correct horse 1');
    const token = res.body.access_token as string;
    const header = decodeProtectedHeader(token);
    assert.equal(header.alg, 'ES256');
    assert.ok(header.kid);

    const jwks = await call(server, 'GET', '/.well-known/jwks.json');
    assert.equal(jwks.status, 200);
    for (const k of jwks.body.keys) assert.equal(k.d, undefined, 'no private key material is published');
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks.body), { issuer: server.url, algorithms: ['ES256'] });
    assert.equal(payload.sub, ids['ext-alice']);
    assert.equal(payload.upn, 'alice@example.com');
    assert.equal(payload.aud, 'urn:idsync:cloud:signin');
    assert.ok(typeof payload.exp === 'number' && payload.exp > Date.now() / 1000);
    // And as a relying party would, fetching the JWKS over HTTP.
    const remote = await jwtVerify(token, createRemoteJWKSet(new URL('/.well-known/jwks.json', server.url)), {
      issuer: server.url,
      audience: 'urn:idsync:cloud:signin',
    });
    assert.equal(remote.payload.sub, ids['ext-alice']);
  });

  test('an older changedAt does not overwrite a newer hash', async () => {
    const newer = await orgIdHash('Newer password');
    const older = await orgIdHash('Older password');
    await sendHashes(server, admin, [{ externalId: 'ext-dave', hash: newer, changedAt: '2026-03-02T10:00:00Z' }]);
    const late = await sendHashes(server, admin, [{ externalId: 'ext-dave', hash: older, changedAt: '2026-03-01T10:00:00Z' }]);
    assert.equal(late.body.results[0].status, 'Success');
    assert.equal((await signIn('dave@example.com', 'Newer password')).status, 200);
    assert.equal((await signIn('dave@example.com', 'Older password')).status, 400);
    // A newer one does replace it.
    await sendHashes(server, admin, [{ externalId: 'ext-dave', hash: older, changedAt: '2026-03-03T10:00:00Z' }]);
    assert.equal((await signIn('dave@example.com', 'Older password')).status, 200);
  });

  test('a new externalId drops the hash: the password of the identity it named no longer signs the user in', async () => {
    const id = await createScimUser(server, admin, { userName: 'grace@example.com', externalId: 'ext-grace-1' });
    await sendHashes(server, admin, [{ externalId: 'ext-grace-1', hash: await orgIdHash('Grace first'), changedAt: '2026-06-01T10:00:00Z' }]);
    assert.equal((await signIn('grace@example.com', 'Grace first')).status, 200);
    const patch = (externalId: string) =>
      call(server, 'PATCH', `/scim/v2/Users/${id}`, { token: admin, scim: { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'replace', path: 'externalId', value: externalId }] } });
    // The same externalId written again keeps the hash.
    assert.ok([200, 204].includes((await patch('ext-grace-1')).status));
    assert.equal((await signIn('grace@example.com', 'Grace first')).status, 200);
    // Joined to another source object: the old identity's password stops working at once ...
    assert.ok([200, 204].includes((await patch('ext-grace-2')).status));
    assert.equal((await signIn('grace@example.com', 'Grace first')).status, 400);
    // ... and the new identity's hash is stored, even dated before the old one.
    const res = await sendHashes(server, admin, [{ externalId: 'ext-grace-2', hash: await orgIdHash('Grace second'), changedAt: '2026-01-01T10:00:00Z' }]);
    assert.equal(res.body.results[0].status, 'Success');
    assert.equal((await signIn('grace@example.com', 'Grace second')).status, 200);
  });

  test('a changedAt far ahead of the server clock counts as the arrival; a stored future date does not block a real change', async () => {
    const id = await createScimUser(server, admin, { userName: 'henry@example.com', externalId: 'ext-henry' });
    await sendHashes(server, admin, [{ externalId: 'ext-henry', hash: await orgIdHash('Henry future'), changedAt: '2036-01-01T00:00:00Z' }]);
    assert.equal((await signIn('henry@example.com', 'Henry future')).status, 200);
    // A real change a little later (dated by its arrival) wins over the change from a clock 10 years ahead.
    await sendHashes(server, admin, [{ externalId: 'ext-henry', hash: await orgIdHash('Henry real') }]);
    assert.equal((await signIn('henry@example.com', 'Henry real')).status, 200, 'the real change is stored');
    // A date within the allowed skew is kept as it came (a late retry of an older change still loses to it).
    const soon = new Date(Date.now() + 60_000).toISOString();
    await sendHashes(server, admin, [{ externalId: 'ext-henry', hash: await orgIdHash('Henry soon'), changedAt: soon }]);
    await sendHashes(server, admin, [{ externalId: 'ext-henry', hash: await orgIdHash('Henry late retry'), changedAt: new Date(Date.now() - 1000).toISOString() }]);
    assert.equal((await signIn('henry@example.com', 'Henry soon')).status, 200);
    // A future date stored before dates were bounded (written here directly) does not block either.
    server.db!.prepare("UPDATE user_password_hashes SET changed_at = '2036-01-01T00:00:00.000Z' WHERE user_id = ?").run(id);
    await sendHashes(server, admin, [{ externalId: 'ext-henry', hash: await orgIdHash('Henry after upgrade') }]);
    assert.equal((await signIn('henry@example.com', 'Henry after upgrade')).status, 200);
  });

  test('no API ever returns a hash', async () => {
    const hash = await orgIdHash('Visible?');
    await sendHashes(server, admin, [{ externalId: 'ext-erin', hash }]);
    const key = hash.split(',')[3]!.slice(0, 64);
    for (const path of ['/scim/v2/Users/' + ids['ext-erin'], '/admin/v1/accounts', '/admin/v1/audit', '/.well-known/jwks.json']) {
      const res = await call(server, 'GET', path, { token: admin });
      assert.ok(!res.text.includes(key), `${path} does not contain the hash`);
    }
  });

  test('a disabled user cannot sign in, and can again once enabled', async () => {
    const hash = await orgIdHash('Erin password');
    await sendHashes(server, admin, [{ externalId: 'ext-erin', hash }]);
    assert.equal((await signIn('erin@example.com', 'Erin password')).status, 200);
    await setScimActive(server, admin, ids['ext-erin']!, false);
    const disabled = await signIn('erin@example.com', 'Erin password');
    assert.equal(disabled.status, 400);
    assert.equal(disabled.body.error, 'invalid_grant');
    await setScimActive(server, admin, ids['ext-erin']!, true);
    assert.equal((await signIn('erin@example.com', 'Erin password')).status, 200);
  });

  test('a user without a synced hash cannot sign in, with the same answer as an unknown user', async () => {
    await createScimUser(server, admin, { userName: 'nohash@example.com', externalId: 'ext-nohash' });
    const noHash = await signIn('nohash@example.com', 'anything-at-all');
    const unknown = await signIn('nobody@example.com', 'anything-at-all');
    assert.equal(noHash.status, 400);
    assert.deepEqual(noHash.body, unknown.body);
    assert.equal(noHash.status, unknown.status);
  });

  test('deleting the SCIM user makes sign-in fail', async () => {
    const id = await createScimUser(server, admin, { userName: 'frank@example.com', externalId: 'ext-frank' });
    await sendHashes(server, admin, [{ externalId: 'ext-frank', hash: await orgIdHash('Frank password') }]);
    assert.equal((await signIn('frank@example.com', 'Frank password')).status, 200);
    assert.equal((await call(server, 'DELETE', `/scim/v2/Users/${id}`, { token: admin })).status, 204);
    assert.equal((await signIn('frank@example.com', 'Frank password')).status, 400);
    const left = server.db!.prepare('SELECT count(*) FROM user_password_hashes WHERE user_id = ?').pluck().get(id);
    assert.equal(left, 0, "the deleted user's hash is gone too");
    // A new user of the same name does not inherit the old hash.
    await createScimUser(server, admin, { userName: 'frank@example.com', externalId: 'ext-frank-2' });
    assert.equal((await signIn('frank@example.com', 'Frank password')).status, 400);
  });

  test('the namespaces stay apart: a cloud account is not a directory user', async () => {
    // The administrator cannot sign in as a directory user...
    const asUser = await tokenRequest(server, { grant_type: 'password', username: 'admin', password: 'admin-password-0123', scope: 'openid' });
    assert.equal(asUser.status, 400);
    // ...and a directory user cannot get an API token.
    const asAccount = await tokenRequest(server, { grant_type: 'password', username: 'alice@example.com', password: 'Correct horse 1', scope: 'idsync.api' });
    assert.equal(asAccount.status, 400);
    assert.equal(asAccount.body.error, 'invalid_grant');
    const badScope = await tokenRequest(server, { grant_type: 'password', username: 'alice@example.com', password: 'Correct horse 1', scope: 'root' });
    assert.equal(badScope.body.error, 'invalid_scope');
  });

  test('the audit log has one record per sign-in with the real reason, and no password', async () => {
    const res = await call(server, 'GET', '/admin/v1/audit?type=signin', { token: admin });
    assert.equal(res.status, 200);
    const reasons = new Set(res.body.records.map((r: { reason: string }) => r.reason));
    for (const r of ['success', 'bad_password', 'user_disabled', 'no_password_hash', 'unknown_user']) assert.ok(reasons.has(r), `reason ${r} recorded`);
    for (const rec of res.body.records) {
      assert.equal(rec.type, 'signin');
      assert.equal(rec.ip, '127.0.0.1');
      assert.ok(rec.at && rec.subject);
    }
    for (const pw of ['Correct horse 1', 'Erin password', 'Frank password', 'anything-at-all', 'Legacy pass 100']) {
      assert.ok(!res.text.includes(pw), 'no password in the audit log');
    }
    const raw = server.db!.prepare('SELECT * FROM audit_log').all();
    assert.ok(!JSON.stringify(raw).includes('Correct horse 1'));
    const batches = await call(server, 'GET', '/admin/v1/audit?type=passwordHashes', { token: admin });
    assert.ok(batches.body.records.length > 0);
    assert.ok(!batches.text.includes('PPH1_MD4'), 'no hash in the audit log');
  });
});
