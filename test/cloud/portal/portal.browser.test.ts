/**
 * The cloud admin portal in real Chromium against a real `idsync cloud serve` server (SQLite on
 * disk, production lockout): users arrive over SCIM and their password hashes over the hash API as
 * the sync service sends them; a user signs in; the administrator finds the user, sees its sign-in
 * in the logs, disables and re-enables it, unlocks a locked account and reads the sync status.
 * Safety: a sync-role account cannot sign in, CSRF token and Origin, CSP, no secret in any answer.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- JSON bodies of the endpoints under test */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { fetchToken } from '../../../src/cloud/admin-api-client.js';
import { orgIdHash } from '../../../src/passwords/hash.js';
import { CSP } from '../../../src/web/security.js';
import { docScreenshot, launchBrowser, type TestBrowser } from '../../helpers/browser.js';
import { startTestCloud, type TestCloud } from '../../helpers/cloud.js';
import { skipUnless } from '../../helpers/integration.js';
import { signIn } from '../../helpers/processes.js';
import { assertNoTestSecrets } from '../../helpers/secret-scan.js';

const ANN = { userName: 'ann@example.test', password: 'Ann-password-1!', externalId: 'anchor-ann' };
const BOB = { userName: 'bob@example.test', password: 'Bob-password-1!', externalId: 'anchor-bob' };
const SYNC_ACCOUNT = { username: 'syncer', password: 'Syncer-password-1!' };

describe('cloud portal in Chromium', { skip: skipUnless('chromium') }, () => {
  let cloud: TestCloud;
  let b: TestBrowser;
  const direct: { what: string; text: string }[] = [];
  const hashes: Record<string, string> = {};
  const ids: Record<string, string> = {};

  const raw = async (method: 'GET' | 'POST', p: string, headers: Record<string, string> = {}, body?: unknown) => {
    const res = await request(`${cloud.url}${p}`, { method, headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.body.text();
    direct.push({ what: `${method} ${p}`, text: JSON.stringify(res.headers) + text });
    return { status: res.statusCode, headers: res.headers, text };
  };
  const audit = () => cloud.server.db!.prepare('SELECT type, actor, subject, result, reason FROM audit_log ORDER BY id').all() as { type: string; actor: string | null; subject: string | null; result: string; reason: string }[];

  before(async () => {
    cloud = await startTestCloud();
    // What the sync service does: SCIM users and a group, then their OrgId hashes.
    for (const u of [ANN, BOB]) {
      const r = await cloud.scim('POST', '/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: u.userName, externalId: u.externalId, displayName: u.userName.split('@')[0], active: true });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      ids[u.userName] = r.body.id;
    }
    const g = await cloud.scim('POST', '/Groups', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'Engineering', externalId: 'anchor-eng', members: [{ value: ids[ANN.userName] }] });
    assert.equal(g.status, 201, JSON.stringify(g.body));
    const token = await fetchToken(cloud.url, { grant_type: 'client_credentials', client_id: cloud.syncClientId, client_secret: cloud.syncSecret } as any);
    for (const u of [ANN, BOB]) hashes[u.userName] = await orgIdHash(u.password);
    const res = await request(`${cloud.url}/api/v1/passwordHashes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ items: [ANN, BOB].map((u) => ({ externalId: u.externalId, hash: hashes[u.userName] })) }),
    });
    assert.equal(res.statusCode, 200, await res.body.text());
    // A sync-role cloud account (not a client): it must not get into the portal.
    const adminToken = await fetchToken(cloud.url, { grant_type: 'password', ...cloud.admin });
    const acc = await request(`${cloud.url}/admin/v1/accounts`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ ...SYNC_ACCOUNT, role: 'sync' }) });
    assert.equal(acc.statusCode, 201, await acc.body.text());
    // Ann signs in (the record the admin will look for); bob is locked out by wrong passwords.
    assert.equal(await signIn(cloud.url, ANN.userName, ANN.password), 200);
    // Different wrong passwords: repeats of one wrong password do not count (smart lockout).
    for (let i = 0; i < 12; i++) await signIn(cloud.url, BOB.userName, `Wrong-password-${i}!`);
    assert.notEqual(await signIn(cloud.url, BOB.userName, BOB.password), 200, 'bob is locked out');
    b = await launchBrowser();
  });

  after(async () => {
    await b?.close();
    await cloud?.close();
    if (cloud) rmSync(cloud.dataDir, { recursive: true, force: true });
  });

  test('a sync-role account is refused by the portal, and the refusal is audited', async () => {
    const { page } = b;
    await page.goto(`${cloud.url}/portal/`);
    await page.getByLabel('User name').fill(SYNC_ACCOUNT.username);
    await page.getByLabel('Password').fill(SYNC_ACCOUNT.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'only global administrators' }).waitFor();
    assert.ok(audit().some((r) => r.type === 'portal' && r.subject === SYNC_ACCOUNT.username && r.reason === 'role_not_allowed'));
    assert.equal((await b.context.cookies()).length, 0, 'no session cookie');
  });

  test('the administrator signs in and finds the user, its group and its sign-in in the logs', async () => {
    const { page } = b;
    await page.getByLabel('User name').fill(cloud.admin.username);
    await page.getByLabel('Password').fill(cloud.admin.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Users' }).waitFor();
    assert.ok(audit().some((r) => r.type === 'portal' && r.actor === cloud.admin.username && r.reason === 'portal_signin'));
    const c = (await b.context.cookies()).find((x) => x.name === 'idsync_portal');
    assert.ok(c);
    assert.equal(c.httpOnly, true);
    assert.equal(c.sameSite, 'Strict');

    await page.getByLabel('User name or display name').fill('ann');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('table', { name: 'users' }).getByRole('link', { name: ANN.userName }).click();
    await page.getByRole('heading', { name: ANN.userName }).waitFor();
    await page.getByRole('table', { name: 'groups of the user' }).getByRole('link', { name: 'Engineering' }).waitFor();
    await docScreenshot(page, 'portal-user.png');

    await page.getByRole('link', { name: 'Sign-ins of this user' }).click();
    const rows = page.getByRole('table', { name: 'audit records' }).locator('tbody tr', { hasText: 'signin' });
    await rows.first().waitFor();
    const cells = await rows.first().locator('td').allTextContents();
    assert.equal(cells[1], 'signin');
    assert.equal(cells[2], ANN.userName);
    assert.equal(cells[5], 'success');
  });

  test('disabling a user stops its sign-in; enabling it restores it (both audited)', async () => {
    const { page } = b;
    await page.goto(`${cloud.url}/portal/#/user/${ids[ANN.userName]}`);
    await page.getByRole('button', { name: 'Disable sign-in' }).click();
    await page.locator('#user-state').filter({ hasText: 'Disabled' }).waitFor();
    assert.notEqual(await signIn(cloud.url, ANN.userName, ANN.password), 200, 'a disabled user cannot sign in');
    await page.getByRole('button', { name: 'Enable sign-in' }).click();
    await page.locator('#user-state').filter({ hasText: 'Enabled' }).waitFor();
    assert.equal(await signIn(cloud.url, ANN.userName, ANN.password), 200);
    const reasons = audit().filter((r) => r.actor === cloud.admin.username).map((r) => r.reason);
    assert.ok(reasons.includes('user_disabled_by_admin') && reasons.includes('user_enabled_by_admin'), reasons.join(','));
  });

  test('a locked account is listed and unlocked from the portal; then it signs in', async () => {
    const { page } = b;
    await page.getByRole('link', { name: 'Locked accounts' }).click();
    const table = page.getByRole('table', { name: 'locked accounts' });
    await table.locator('tbody tr', { hasText: `user:${BOB.userName}` }).first().waitFor();
    await table.getByRole('button', { name: `Unlock user:${BOB.userName}` }).first().click();
    await table.locator('tbody tr', { hasText: 'nothing to show' }).waitFor();
    assert.equal(await signIn(cloud.url, BOB.userName, BOB.password), 200);
    assert.ok(audit().some((r) => r.reason === 'account_unlocked' && r.subject === `user:${BOB.userName}`));
  });

  test('sync status lists the sync client with its last export; a silent account is warned about', async () => {
    const { page } = b;
    await page.getByRole('link', { name: 'Sync status' }).click();
    const table = page.getByRole('table', { name: 'sync accounts' });
    await table.locator('tbody tr', { hasText: cloud.syncClientId }).waitFor();
    const client = await table.locator('tbody tr', { hasText: cloud.syncClientId }).locator('td').allTextContents();
    assert.equal(client[4], 'OK', client.join(' | '));
    assert.notEqual(client[2], '—');
    const never = await table.locator('tbody tr', { hasText: SYNC_ACCOUNT.username }).locator('td').allTextContents();
    assert.equal(never[4], 'never synced');
  });

  test('the accounts page lists administrators and sync accounts with their roles, never a secret', async () => {
    const { page } = b;
    await page.getByRole('link', { name: 'Accounts', exact: true }).click();
    // The sync status page just shown also has a table named "accounts" listing the sync account:
    // read the accounts page's table only once its heading is there (allTextContents does not wait).
    await page.getByRole('heading', { name: 'Administrators and sync accounts' }).waitFor();
    const accounts = page.getByRole('table', { name: 'accounts' });
    await accounts.locator('tbody tr', { hasText: SYNC_ACCOUNT.username }).locator('td').nth(2).waitFor();
    const sync = await accounts.locator('tbody tr', { hasText: SYNC_ACCOUNT.username }).locator('td').allTextContents();
    assert.deepEqual(sync.slice(0, 2), [SYNC_ACCOUNT.username, 'DirectorySynchronizationAccounts']);
    assert.match(sync[2]!, /cannot sign in here/);
    const admin = await accounts.locator('tbody tr', { hasText: cloud.admin.username }).first().locator('td').allTextContents();
    assert.deepEqual(admin.slice(0, 2), [cloud.admin.username, 'GlobalAdministrator']);
    const client = await page.getByRole('table', { name: 'clients' }).locator('tbody tr', { hasText: cloud.syncClientId }).locator('td').allTextContents();
    assert.equal(client[1], 'DirectorySynchronizationAccounts');
    await docScreenshot(page, 'portal-accounts.png');
  });

  test('state changes without the CSRF token or from another origin are refused', async () => {
    const si = await raw('POST', '/portal/api/signin', { origin: cloud.url }, { username: cloud.admin.username, password: cloud.admin.password });
    assert.equal(si.status, 200);
    const cookie = String(si.headers['set-cookie']).split(';')[0]!;
    const csrf = JSON.parse(si.text).csrf as string;
    const path = `/portal/api/users/${ids[ANN.userName]}/active`;
    const noToken = await raw('POST', path, { cookie, origin: cloud.url }, { active: false });
    assert.equal(noToken.status, 403);
    const foreign = await raw('POST', path, { cookie, origin: 'http://evil.example', 'x-csrf-token': csrf }, { active: false });
    assert.equal(foreign.status, 403);
    assert.equal((await raw('POST', '/portal/api/signin', { origin: 'http://evil.example' }, { username: cloud.admin.username, password: cloud.admin.password })).status, 403);
    assert.equal(await signIn(cloud.url, ANN.userName, ANN.password), 200, 'ann was not disabled');
    assert.ok(audit().filter((r) => r.reason === 'csrf_refused').length >= 3);
    assert.equal((await raw('GET', '/portal/api/users')).status, 401);
    const ok = await raw('POST', path, { cookie, origin: cloud.url, 'x-csrf-token': csrf }, { active: true });
    assert.equal(ok.status, 200, ok.text);
  });

  test('every portal answer carries the CSP; no third-party request; no CSP violation', async () => {
    await b.settle();
    const mine = b.seen.filter((s) => s.url.startsWith(`${cloud.url}/portal`));
    assert.ok(mine.length > 10);
    for (const s of mine) assert.equal(s.headers['content-security-policy'], CSP, s.url);
    for (const s of b.seen) assert.ok(s.url.startsWith(cloud.url), s.url);
    assert.ok(!b.consoleMessages.some((m) => /Content Security Policy|pageerror/i.test(m)), b.consoleMessages.join('\n'));
  });

  test('no answer holds a password, NT hash, OrgId hash or client secret', async () => {
    await b.settle();
    const scanned = await assertNoTestSecrets(
      { passwords: [ANN.password, BOB.password, SYNC_ACCOUNT.password, cloud.admin.password], tokens: { 'sync client secret': cloud.syncSecret, 'OrgId hash of ann': hashes[ANN.userName]!, 'OrgId hash of bob': hashes[BOB.userName]! } },
      { texts: [...b.seen.map((s) => ({ what: s.url, text: JSON.stringify(s.headers) + s.body })), ...direct] },
    );
    assert.ok(scanned.texts > 20);
  });
});
