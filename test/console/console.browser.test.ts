/**
 * The sync console in real Chromium against a real `idsync serve` SyncService (LDIF source, engine
 * SQLite on disk) exporting to a real cloud directory over HTTP: sign in, see the cycle's counts,
 * search a user and open its lineage to its cloud resource, run a cycle; and the safety rules —
 * CSRF token and Origin, CSP, cookie flags, no secret in any response.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- JSON bodies of the endpoints under test */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { writeConsoleAccount } from '../../src/console/account.js';
import { CSP } from '../../src/web/security.js';
import { EVENTS } from '../../src/events/catalog.js';
import { SyncService } from '../../src/service/service.js';
import { docScreenshot, launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { ldifConnector, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { skipUnless } from '../helpers/integration.js';
import { assertNoTestSecrets } from '../helpers/secret-scan.js';

const BASE = 'dc=example,dc=test';
const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
const CONSOLE_USER = 'operator';
const CONSOLE_PASSWORD = 'Console-pass-1234!';

function ldif(n: number): string {
  const out = ['version: 1', ''];
  for (let i = 1; i <= n; i++) {
    out.push(`dn: uid=u${i},ou=eng,${BASE}`, 'objectClass: inetOrgPerson', `uid: u${i}`, `cn: User ${i}`, `sn: u${i}`, `mail: u${i}@example.test`, `entryUUID: ${uuid(i)}`, '');
  }
  return out.join('\n');
}

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

describe('sync console in Chromium', { skip: skipUnless('chromium') }, () => {
  let lab: EngineLab;
  let service: SyncService;
  let url: string;
  let b: TestBrowser;
  const direct: { what: string; text: string }[] = [];
  let events: () => { id: number; details: Record<string, unknown> }[];
  let setCloudSecret: (secret: string) => void;
  let emit: (def: (typeof EVENTS)[keyof typeof EVENTS], details: Record<string, unknown>) => void;

  const raw = async (method: 'GET' | 'POST', p: string, headers: Record<string, string> = {}, body?: unknown): Promise<Raw> => {
    const res = await request(`${url}${p}`, { method, headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.body.text();
    direct.push({ what: `${method} ${p}`, text: JSON.stringify(res.headers) + text });
    return { status: res.statusCode, headers: res.headers, text };
  };
  /** Signs in over HTTP (as the page does) and returns the cookie and CSRF token. */
  const httpSession = async (): Promise<{ cookie: string; csrf: string }> => {
    const r = await raw('POST', '/console/api/signin', { origin: url }, { username: CONSOLE_USER, password: CONSOLE_PASSWORD });
    assert.equal(r.status, 200, r.text);
    const set = String(r.headers['set-cookie']);
    return { cookie: set.split(';')[0]!, csrf: JSON.parse(r.text).csrf };
  };

  before(async () => {
    lab = await startEngineLab({ prefix: 'idsync-console-', connectors: [ldifConnector()], files: { 'source.ldif': ldif(5) } });
    const ctx = lab.detachContext(); // the service closes it
    await writeConsoleAccount(ctx.loaded.dataDir, CONSOLE_USER, CONSOLE_PASSWORD, { logN: 10, r: 8, p: 1 });
    service = new SyncService(ctx, { port: 0, intervalMs: 3_600_000, logger: false });
    ({ url } = await service.start());
    await service.idle();
    events = () => ctx.events.query({ limit: 1000 }) as any;
    setCloudSecret = (secret) => ctx.credentials.set('cloud', secret);
    emit = (def, details) => void ctx.events.emit(def, details);
    b = await launchBrowser();
  });

  after(async () => {
    await b?.close();
    await service?.stop(5000).catch(() => undefined);
    await lab?.close();
  });

  test('a wrong password is refused and audited; the right one signs in (event 6150)', async () => {
    const { page } = b;
    await page.goto(`${url}/console/`);
    await page.getByLabel('User name').fill(CONSOLE_USER);
    await page.getByLabel('Password').fill('not-the-password-1');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'incorrect' }).waitFor();
    assert.ok(events().some((e) => e.id === EVENTS.CONSOLE_SIGNIN_FAILED.id && e.details.user === CONSOLE_USER), 'event 6151');

    await page.getByLabel('Password').fill(CONSOLE_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    assert.ok(events().some((e) => e.id === EVENTS.CONSOLE_SIGNED_IN.id && e.details.user === CONSOLE_USER), 'event 6150');
    const cookies = await b.context.cookies();
    const c = cookies.find((x) => x.name === 'idsync_console');
    assert.ok(c, 'session cookie set');
    assert.equal(c.httpOnly, true);
    assert.equal(c.sameSite, 'Strict');
    assert.equal(c.path, '/console');
  });

  test('the overview shows health and the last cycle with its counts per connector', async () => {
    const { page } = b;
    await page.locator('#health').filter({ hasText: 'Health: ok' }).waitFor();
    const table = page.getByRole('table', { name: 'last cycle per connector' });
    const exportRow = table.locator('tr', { hasText: 'export' });
    // The first cycle exported the 5 users: adds column.
    const cells = await exportRow.locator('td').allTextContents();
    assert.equal(cells[0], 'cloud');
    assert.equal(cells[3], '5', `export row: ${cells.join(' | ')}`);
    const importCells = await table.locator('tr', { hasText: 'import' }).locator('td').allTextContents();
    assert.equal(importCells[0], 'hr');
    assert.equal(importCells[3], '5', `import row: ${importCells.join(' | ')}`);
    await docScreenshot(page, 'console-overview.png');
  });

  test('search the metaverse by mail and open the lineage down to the cloud resource id', async () => {
    const { page } = b;
    await page.getByRole('link', { name: 'Search' }).click();
    await page.getByLabel('Attribute').fill('mail');
    await page.getByLabel('Operator').selectOption('eq');
    await page.getByLabel('Value').fill('U3@example.test'); // case-insensitive, like the directories
    await page.getByRole('button', { name: 'Search' }).click();
    const results = page.getByRole('table', { name: 'search results' });
    await results.locator('tbody tr a').first().waitFor();
    assert.equal(await results.locator('tbody tr').count(), 1);
    await results.locator('tbody tr a').first().click();
    await page.getByRole('heading', { name: /^Object #\d+/ }).waitFor();
    const lineage = await page.getByRole('list', { name: 'lineage' }).textContent();
    assert.match(lineage ?? '', /Connector space hr: uid=u3,ou=eng,dc=example,dc=test/);
    const cloudUser = (await lab.cloud.all('Users')).find((u) => u.userName === 'u3@example.test');
    assert.ok(cloudUser, 'u3 is in the cloud');
    assert.match(await page.locator('#cloud-resource').textContent() ?? '', new RegExp(cloudUser.id));

    // starts-with pages: 5 users, 2 per page through the API the page uses.
    const s = await httpSession();
    const p1 = JSON.parse((await raw('GET', '/console/api/search?attr=mail&op=sw&value=u&limit=2', { cookie: s.cookie })).text);
    assert.equal(p1.objects.length, 2);
    assert.notEqual(p1.next, null);
    const all = [...p1.objects];
    for (let next = p1.next; next !== null; ) {
      const p = JSON.parse((await raw('GET', `/console/api/search?attr=mail&op=sw&value=u&limit=2&after=${next}`, { cookie: s.cookie })).text);
      all.push(...p.objects);
      next = p.next;
    }
    assert.equal(new Set(all.map((o) => o.id)).size, 5);

    // The service brings the console's attribute index up to date after the cycle, off its path.
    for (const deadline = Date.now() + 60_000; service.attrIndex.watermark() === ''; ) {
      assert.ok(Date.now() < deadline, 'the attribute index caught up after the cycle');
      await new Promise((r) => setTimeout(r, 100));
    }
    const indexed = JSON.parse((await raw('GET', '/console/api/search?attr=MAIL&op=eq&value=u3%40example.test', { cookie: s.cookie })).text);
    assert.equal(indexed.method, 'index');
    assert.deepEqual(indexed.objects.map((o: { display: string }) => o.display), ['User 3']);
  });

  test('a page that answers after the user moved on does not replace the page in view', async () => {
    const { page } = b;
    // The overview's answer is held in the browser (Chromium's own request interception, the server
    // is real) until the user has opened Search: the late overview must not cover the search form.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let seen = false;
    await page.route('**/console/api/overview', async (route) => {
      seen = true;
      await held;
      await route.continue();
    });
    try {
      await page.goto(`${url}/console/#/overview`);
      await page.reload();
      for (const deadline = Date.now() + 30_000; !seen; await new Promise((r) => setTimeout(r, 20))) assert.ok(Date.now() < deadline, 'the overview asked for its data');
      await page.getByRole('link', { name: 'Search' }).click();
      await page.getByRole('heading', { name: 'Search' }).waitFor();
      const answered = page.waitForResponse('**/console/api/overview');
      release();
      await answered;
      // The late overview has had its turn to render; give the page's scripts a few frames.
      // (a string: the test is compiled without the DOM's types)
      await page.evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))');
      assert.equal(await page.getByRole('heading', { name: 'Overview' }).count(), 0, 'the late overview stayed out of view');
      assert.equal(await page.getByLabel('Attribute', { exact: true }).count(), 1, 'the search form is shown');
    } finally {
      await page.unroute('**/console/api/overview');
    }
  });

  test('"Run a sync cycle now" starts a cycle, audited with the user (event 6153); Operations lists it', async () => {
    const { page } = b;
    const before = (await raw('GET', '/status')).text;
    const lastBefore = JSON.parse(before).cycle.last.id as number;
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('button', { name: 'Run a sync cycle now' }).click();
    await page.getByRole('status').filter({ hasText: 'Cycle started' }).waitFor();
    assert.ok(events().some((e) => e.id === EVENTS.CONSOLE_CYCLE_REQUESTED.id && e.details.user === CONSOLE_USER), 'event 6153');
    await service.idle();
    await page.getByRole('link', { name: 'Operations' }).click();
    await page.getByRole('link', { name: `#${lastBefore + 1}` }).click();
    await page.getByRole('heading', { name: new RegExp(`^Run #${lastBefore + 1}`) }).waitFor();
  });

  test('the events page filters by id', async () => {
    const { page } = b;
    await page.goto(`${url}/console/#/events?id=${EVENTS.CONSOLE_SIGNED_IN.id}`);
    const rows = page.getByRole('table', { name: 'events' }).locator('tbody tr');
    await rows.first().waitFor();
    const ids = await rows.locator('td:nth-child(2)').allTextContents();
    assert.ok(ids.length >= 1);
    assert.ok(ids.every((id) => id === String(EVENTS.CONSOLE_SIGNED_IN.id)), ids.join(','));
  });

  test('the events page filters by source and time, and shows new events live (SSE) without a reload', async () => {
    const { page } = b;
    await page.goto(`${url}/console/#/events?source=${encodeURIComponent('idsync Service')}&range=${encodeURIComponent('last hour')}`);
    const rows = page.getByRole('table', { name: 'events' }).locator('tbody tr');
    await rows.first().waitFor();
    const sources = await rows.locator('td:nth-child(4)').allTextContents();
    assert.ok(sources.length >= 1 && sources.every((x) => x === 'idsync Service'), sources.join(','));
    await page.locator('#live-state').filter({ hasText: 'new events appear at the top' }).waitFor();
    const before = await rows.count();
    // Written by another component: it must appear at the top by itself.
    emit(EVENTS.CONSOLE_ACCOUNT_SET, { user: 'live-check' });
    await page.getByRole('table', { name: 'events' }).locator('tbody tr.new', { hasText: 'live-check' }).waitFor();
    assert.equal(await rows.count(), before + 1);
    assert.match((await rows.first().textContent()) ?? '', /live-check/);
    // An event of another source does not come through the filtered stream.
    emit(EVENTS.SYNC_CYCLE_STARTED, { runId: 999, profile: 'live-check-2' });
    emit(EVENTS.CONSOLE_ACCOUNT_SET, { user: 'live-check-3' });
    await page.getByRole('table', { name: 'events' }).locator('tbody tr.new', { hasText: 'live-check-3' }).waitFor();
    assert.equal(await page.getByRole('table', { name: 'events' }).locator('tbody tr', { hasText: 'live-check-2' }).count(), 0);
    const stream = b.seen.find((x) => x.url.includes('/console/api/events/stream'));
    assert.ok(stream, 'the stream was opened');
    assert.equal(stream.headers['content-security-policy'], CSP);
    assert.match(stream.headers['content-type'] ?? '', /^text\/event-stream/);
    await page.goto(`${url}/console/#/search`); // closes the stream
  });

  test('every page and API answer carries the strict CSP; the page ran with no CSP violation', async () => {
    await b.settle();
    const mine = b.seen.filter((s) => s.url.startsWith(`${url}/console`));
    assert.ok(mine.length > 10, `${mine.length} responses`);
    for (const s of mine) {
      assert.equal(s.headers['content-security-policy'], CSP, s.url);
      assert.equal(s.headers['x-frame-options'], 'DENY', s.url);
    }
    assert.match(CSP, /script-src 'self'(;|$)/);
    assert.doesNotMatch(CSP, /unsafe/);
    assert.ok(!b.consoleMessages.some((m) => /Content Security Policy|pageerror/i.test(m)), b.consoleMessages.join('\n'));
    // Nothing third-party: every request went to this service.
    for (const s of b.seen) assert.ok(s.url.startsWith(url), s.url);
  });

  test('a state change without the CSRF token, with a wrong one, or from another origin is refused (6154)', async () => {
    const s = await httpSession();
    const runsBefore = JSON.parse((await raw('GET', '/console/api/runs', { cookie: s.cookie })).text).runs.length;
    const noToken = await raw('POST', '/console/api/cycle', { cookie: s.cookie, origin: url }, {});
    assert.equal(noToken.status, 403);
    assert.equal(JSON.parse(noToken.text).error.code, 'CSRF_TOKEN');
    const wrongToken = await raw('POST', '/console/api/cycle', { cookie: s.cookie, origin: url, 'x-csrf-token': s.csrf.slice(0, -2) + 'xx' }, {});
    assert.equal(wrongToken.status, 403);
    const foreign = await raw('POST', '/console/api/cycle', { cookie: s.cookie, origin: 'http://evil.example', 'x-csrf-token': s.csrf }, {});
    assert.equal(foreign.status, 403);
    assert.equal(JSON.parse(foreign.text).error.code, 'CSRF_ORIGIN');
    const noOrigin = await raw('POST', '/console/api/cycle', { cookie: s.cookie, 'x-csrf-token': s.csrf }, {});
    assert.equal(noOrigin.status, 403);
    const foreignSignin = await raw('POST', '/console/api/signin', { origin: 'http://evil.example' }, { username: CONSOLE_USER, password: CONSOLE_PASSWORD });
    assert.equal(foreignSignin.status, 403);
    assert.equal(foreignSignin.headers['set-cookie'], undefined);
    await service.idle();
    assert.equal(JSON.parse((await raw('GET', '/console/api/runs', { cookie: s.cookie })).text).runs.length, runsBefore, 'no cycle was started');
    assert.ok(events().filter((e) => e.id === EVENTS.CONSOLE_REQUEST_REFUSED.id).length >= 4, 'event 6154 for each refusal');
    // The right token and origin work (the refusals were not for another reason).
    const ok = await raw('POST', '/console/api/cycle', { cookie: s.cookie, origin: url, 'x-csrf-token': s.csrf }, {});
    assert.equal(ok.status, 202);
    await service.idle();
  });

  test('without a session the API answers 401; after set-password the old session ends', async () => {
    assert.equal((await raw('GET', '/console/api/overview')).status, 401);
    assert.equal((await raw('GET', '/console/api/overview', { cookie: 'idsync_console=forged' })).status, 401);
    const s = await httpSession();
    assert.equal((await raw('GET', '/console/api/overview', { cookie: s.cookie })).status, 200);
    await writeConsoleAccount(lab.loaded.dataDir, CONSOLE_USER, CONSOLE_PASSWORD + '2', { logN: 10, r: 8, p: 1 });
    assert.equal((await raw('GET', '/console/api/overview', { cookie: s.cookie })).status, 401);
    await writeConsoleAccount(lab.loaded.dataDir, CONSOLE_USER, CONSOLE_PASSWORD, { logN: 10, r: 8, p: 1 });
  });

  test('no response the browser or the tests saw holds the console password, the cloud secret or an admin password', async () => {
    await b.settle();
    const scanned = await assertNoTestSecrets(
      { passwords: [CONSOLE_PASSWORD, CONSOLE_PASSWORD + '2', lab.cloud.admin.password], tokens: { 'cloud sync secret': lab.cloud.syncSecret } },
      { texts: [...b.seen.map((s) => ({ what: s.url, text: JSON.stringify(s.headers) + s.body })), ...direct] },
    );
    assert.ok(scanned.texts > 20, `${scanned.texts} responses scanned`);
  });

  test('a refused cloud credential turns the overview degraded with event 115 and the fix; a good one recovers it without a restart', async () => {
    const { page } = b;
    setCloudSecret('Wrong-cloud-secret-123');
    lab.writeFile('source.ldif', ldif(6)); // something to export: only a write tests the credential
    // The password was set again in the previous test: the browser's session ended with it.
    await page.goto(`${url}/console/#/overview`);
    await page.getByLabel('User name').fill(CONSOLE_USER);
    await page.getByLabel('Password').fill(CONSOLE_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Run a sync cycle now' }).click();
    await page.getByRole('status').filter({ hasText: 'Cycle started' }).waitFor();
    await service.idle();
    await page.reload();
    await page.locator('#health').filter({ hasText: 'Health: degraded' }).waitFor();
    const reason = page.locator('ul.degraded li', { hasText: 'cloud-credential' });
    assert.match((await reason.textContent()) ?? '', /Fix: Update the cloud credential with `idsync credentials set cloud`/);
    await page.goto(`${url}/console/#/events?id=115`);
    await page.getByRole('table', { name: 'events' }).locator('tbody tr td:nth-child(2)', { hasText: '115' }).first().waitFor();

    setCloudSecret(lab.cloud.syncSecret);
    await page.goto(`${url}/console/#/overview`);
    await page.getByRole('button', { name: 'Run a sync cycle now' }).click();
    await page.getByRole('status').filter({ hasText: 'Cycle started' }).waitFor();
    await service.idle();
    await page.reload();
    await page.locator('#health').filter({ hasText: 'Health: ok' }).waitFor();
    assert.equal((await lab.cloud.all('Users')).length, 6, 'the waiting user was exported');
  });

  test("a run's error links to the object it names: the lineage of a user the cloud refused (conflict)", async () => {
    const { page } = b;
    // u7 takes u1's mail, so its userName: the cloud refuses to create it.
    const dup = [`dn: uid=u7,ou=eng,${BASE}`, 'objectClass: inetOrgPerson', 'uid: u7', 'cn: User 7', 'sn: u7', 'mail: u1@example.test', `entryUUID: ${uuid(7)}`, ''].join('\n');
    lab.writeFile('source.ldif', ldif(6) + '\n' + dup);
    await page.goto(`${url}/console/#/overview`);
    await page.getByRole('button', { name: 'Run a sync cycle now' }).click();
    await page.getByRole('status').filter({ hasText: 'Cycle started' }).waitFor();
    await service.idle();
    const last = JSON.parse((await raw('GET', '/status')).text).cycle.last.id as number;
    const s = await httpSession();
    const run = JSON.parse((await raw('GET', `/console/api/runs/${last}`, { cookie: s.cookie })).text);
    const rejected = run.errors.find((e: any) => e.code === 'CLOUD_CONFLICT');
    assert.ok(rejected && typeof rejected.mvId === 'number', `run ${last}: ${JSON.stringify(run.errors)}`);
    await page.goto(`${url}/console/#/operations/${last}`);
    const errors = page.getByRole('table', { name: 'errors' });
    const link = errors.locator('tbody tr', { hasText: 'CLOUD_CONFLICT' }).getByRole('link');
    await link.click();
    await page.getByRole('heading', { name: /^Object #\d+/ }).waitFor();
    assert.match((await page.getByRole('list', { name: 'lineage' }).textContent()) ?? '', /uid=u7,ou=eng,dc=example,dc=test/);
    assert.match((await page.locator('#cloud-resource').textContent()) ?? '', /not (created|exported) yet/);
  });

  // Last: it blocks this address's console sign-in for 15 minutes.
  test('after 5 failed sign-ins from an address even the right password is refused there (429, 6151)', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await raw('POST', '/console/api/signin', { origin: url }, { username: CONSOLE_USER, password: `Wrong-password-${i}!` })).status, 401);
    const r = await raw('POST', '/console/api/signin', { origin: url }, { username: CONSOLE_USER, password: CONSOLE_PASSWORD });
    assert.equal(r.status, 429);
    assert.equal(JSON.parse(r.text).error.code, 'SIGNIN_THROTTLED');
    assert.equal(r.headers['set-cookie'], undefined);
  });
});
