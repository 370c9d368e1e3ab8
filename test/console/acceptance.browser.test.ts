/**
 * Issue 14's acceptance, in Chromium against real processes only: a real slapd holding users with
 * their NT hashes (sambaNTPassword), `idsync serve` and `idsync cloud serve` spawned as processes
 * from the sources, configured through the CLI as an administrator does it. Default smart lockout,
 * default TLS rules (loopback), production password hashing.
 *
 *   sign in; see a cycle's counts; search the metaverse (and the connector space) and open a user's
 *   lineage to its cloud resource (which source gave each attribute, password sync, trace);
 *   break the cloud credential (a password change then refused by the cloud) and watch the overview
 *   turn degraded with events 115/655 and the fix;
 *   update the credential in the console's form (a wrong one refused, the right one saved) and watch
 *   it recover in the same service process; approve deletions held by the threshold (event 6156 with
 *   who and when); in the cloud portal find the user, see its sign-in, unlock a locked account.
 * Every response the browser saw, and everything the processes printed, is scanned for secrets.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- JSON bodies of the endpoints under test */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { stringify } from 'yaml';
import { fetchToken } from '../../src/cloud/admin-api-client.js';
import { PCN_PATH } from '../../src/passwords/handlers.js';
import { CSP } from '../../src/web/security.js';
import { docScreenshot, launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { skipUnless } from '../helpers/integration.js';
import { sambaNtUsersLdif } from '../helpers/passwords.js';
import { signIn, stopProc, until, type Proc } from '../helpers/processes.js';
import { repoRoot } from '../helpers/run-cli.js';
import { assertNoTestSecrets } from '../helpers/secret-scan.js';
import { freePort, startSlapd, type Slapd } from '../helpers/slapd.js';

const USERS = 6;
const passwordOf = (i: number) => `Initial-${i}-Pass!`;
const ADMIN_PASSWORD = 'Cloud-admin-pass-1!';
const SYNC_ACCOUNT = 'syncer';
const P1 = 'Cloud-sync-pass-one-1';
const P2 = 'Cloud-sync-pass-two-2';
const WRONG = 'Cloud-sync-pass-wrong-9';
const CONSOLE_USER = 'operator';
const CONSOLE_PASSWORD = 'Console-pass-5678!';
const CHANGED = 'Changed-1-Pass!';
const AGENT_TOKEN = 'agent-token-acceptance-0123456789';
const RUNNER = path.join(repoRoot, 'test/helpers/idsync-main.ts');

/** Everything the processes printed, for the secret scan. */
const printed: { what: string; text: string }[] = [];

/** `idsync ...` from the sources (no build needed), as a child process. */
function spawnSrc(args: string[], input?: string, env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', RUNNER, ...args], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', ...env } });
  const out = { text: '' };
  const record = { what: `idsync ${args.filter((a) => !a.startsWith('/')).join(' ')}`, text: '' };
  printed.push(record);
  const add = (d: Buffer) => {
    out.text += d.toString('utf8');
    record.text = out.text;
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  child.stdin?.end(input ?? '');
  return { child, out, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

async function run(args: string[], input?: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const p = spawnSrc(args, input, env);
  const code = await p.exited;
  assert.equal(code, 0, `idsync ${args.join(' ')}: ${p.out.text}`);
  return p.out.text;
}

describe('acceptance: both consoles in Chromium against slapd, `idsync serve` and `idsync cloud serve`', { skip: skipUnless('chromium') || skipUnless('slapd') }, () => {
  let slapd: Slapd;
  let cloudProc: Proc | undefined;
  let serve: Proc | undefined;
  let cloudUrl: string;
  let url: string;
  let dir: string;
  let config: string;
  let b: TestBrowser;
  const adminEnv = { IDSYNC_CLOUD_ADMIN_USER: 'admin', IDSYNC_CLOUD_ADMIN_PASSWORD: ADMIN_PASSWORD };
  const cli = (args: string[], input?: string) => run(['-c', config, ...args], input);
  const status = async () => JSON.parse(await (await request(`${url}/status`)).body.text());
  const events = async (): Promise<{ id: number; time: string; details: Record<string, unknown> }[]> => JSON.parse(await cli(['events', '--json', '--limit', '10000']));
  const cloudUsers = async (): Promise<any[]> => {
    const token = await fetchToken(cloudUrl, { grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD });
    const res = await request(`${cloudUrl}/scim/v2/Users?count=1000`, { headers: { authorization: `Bearer ${token}` } });
    return ((await res.body.json()) as any).Resources ?? [];
  };
  const cycleDone = async (after: number) => until('a cycle to finish', async () => {
    const s = await status();
    return !s.cycle.inProgress && (s.cycle.last?.id ?? 0) > after ? s : undefined;
  }, 120_000, 250);

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'idsync-acceptance-'));
    slapd = await startSlapd({ sambaSchema: true, seedLdif: await sambaNtUsersLdif({ count: USERS, uidPrefix: 'pw', cnPrefix: 'Pw', passwordOf }) });
    const port = await freePort();
    const c = spawnSrc(['cloud', 'serve', '--data', path.join(dir, 'cloud'), '--port', String(port), '--log-level', 'silent'], undefined, adminEnv);
    cloudProc = c;
    cloudUrl = await until('the cloud to listen', () => /listening on (\S+)/.exec(c.out.text)?.[1], 60_000);
    await run(['cloud', 'admin', 'create-account', '--url', cloudUrl, '--username', SYNC_ACCOUNT, '--role', 'sync'], `${P1}\n`, adminEnv);
    config = path.join(dir, 'idsync.yaml');
    writeFileSync(
      config,
      stringify({
        dataDir: './data',
        connectors: [{ name: 'ldap', type: 'ldap', url: slapd.url, bindDn: slapd.adminDn, baseDn: slapd.baseDn }],
        cloud: { url: cloudUrl, auth: { type: 'password', username: SYNC_ACCOUNT } },
        // Deleting half of six users must be held: a count below the default's 10 %.
        sync: { deletionThreshold: 2 },
      }),
    );
    await cli(['credentials', 'set', 'ldap'], `${slapd.adminPassword}\n`);
    await cli(['credentials', 'set', 'cloud'], `${P1}\n`);
    await cli(['credentials', 'set', 'agent', '--no-validate'], `${AGENT_TOKEN}\n`);
    await cli(['console', 'set-password', '--user', CONSOLE_USER], `${CONSOLE_PASSWORD}\n`);
    const s = spawnSrc(['-c', config, 'serve', '--port', '0', '--interval', '1h']);
    serve = s;
    url = await until('the service to listen', () => /listening on (http\S+)/.exec(s.out.text)?.[1], 60_000);
    await cycleDone(0);
    b = await launchBrowser();
  });

  after(async () => {
    await b?.close();
    await stopProc(serve);
    await stopProc(cloudProc);
    await slapd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('sign in and see the first cycle with its counts per connector', async () => {
    const { page } = b;
    await page.goto(`${url}/console/`);
    await page.getByLabel('User name').fill(CONSOLE_USER);
    await page.getByLabel('Password').fill(CONSOLE_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.locator('#health').filter({ hasText: 'Health: ok' }).waitFor();
    const table = page.getByRole('table', { name: 'last cycle per connector' });
    const importCells = await table.locator('tr', { hasText: 'import' }).locator('td').allTextContents();
    assert.deepEqual([importCells[0], importCells[3]], ['ldap', String(USERS)], importCells.join(' | '));
    const exportCells = await table.locator('tr', { hasText: 'export' }).locator('td').allTextContents();
    assert.deepEqual([exportCells[0], exportCells[3]], ['cloud', String(USERS)], exportCells.join(' | '));
    await docScreenshot(page, 'console-overview.png');
  });

  test("search the metaverse and open a user's lineage to its cloud resource; trace it", async () => {
    const { page } = b;
    // pw2 signs in once: the record the portal shows later, and a password sync status here.
    assert.equal(await signIn(cloudUrl, 'pw2@lab.test', passwordOf(2)), 200);
    await page.getByRole('link', { name: 'Search' }).click();
    // The click returns before the hash change has rendered the page, and 'In' alone also matches
    // a label of the overview's charts ("Change to sign-in"): wait for the page, match exactly.
    await page.getByRole('heading', { name: 'Search' }).waitFor();
    await page.getByLabel('In', { exact: true }).selectOption('mv');
    await page.getByLabel('Attribute').fill('mail');
    await page.getByLabel('Operator').selectOption('eq');
    await page.getByLabel('Value').fill('PW2@lab.test');
    await page.getByRole('button', { name: 'Search' }).click();
    const results = page.getByRole('table', { name: 'search results' });
    await results.locator('tbody tr a').first().waitFor();
    assert.equal(await results.locator('tbody tr').count(), 1);
    await results.locator('tbody tr a').first().click();
    await page.getByRole('heading', { name: /^Object #\d+ \(user\)/ }).waitFor();
    const lineage = (await page.getByRole('list', { name: 'lineage' }).textContent()) ?? '';
    assert.match(lineage, /Source entry ldap: uid=pw2,ou=people,dc=lab,dc=test/);
    assert.match(lineage, /Connector space ldap: uid=pw2,ou=people,dc=lab,dc=test — pending: none/);
    assert.match(lineage, /no pending export/);
    const cloudUser = (await cloudUsers()).find((u) => u.userName === 'pw2@lab.test');
    assert.ok(cloudUser, 'pw2 is in the cloud');
    assert.match((await page.locator('#cloud-resource').textContent()) ?? '', new RegExp(`${cloudUser.id} — last export \\d{4}-`));
    assert.match((await page.locator('#password-status').textContent()) ?? '', /Success at \d{4}-/);
    // Which source gave each attribute.
    const mailRow = await page.getByRole('table', { name: 'metaverse attributes' }).locator('tbody tr', { hasText: 'pw2@lab.test' }).first().locator('td').allTextContents();
    assert.equal(mailRow[2], 'ldap', mailRow.join(' | '));
    await page.getByRole('button', { name: 'Trace this object' }).click();
    const trace = page.getByRole('region', { name: 'trace' });
    await trace.waitFor();
    const traced = (await trace.textContent()) ?? '';
    assert.match(traced, /import\s*unchanged from ldap/);
    assert.match(traced, new RegExp(`export\\s*unchanged \\(cloud id ${cloudUser.id}\\)`));
    await docScreenshot(page, 'console-lineage.png');

    // The connector space, attribute present: every user's entry.
    await page.getByRole('link', { name: 'Search' }).click();
    await page.getByRole('heading', { name: 'Search' }).waitFor();
    await page.getByLabel('In', { exact: true }).selectOption('cs');
    await page.getByLabel('Attribute').fill('uid');
    await page.getByLabel('Operator').selectOption('pr');
    await page.getByLabel('Value').fill('');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('table', { name: 'search results' }).locator('tbody tr', { hasText: 'uid=pw5' }).waitFor();
    assert.equal(await page.getByRole('table', { name: 'search results' }).locator('tbody tr').count(), USERS);
  });

  test('a broken cloud credential turns the overview degraded with 115/655 and the fix; the form refuses a wrong one and saves the right one; it recovers without a restart', async () => {
    const { page } = b;
    const pid = serve!.child.pid;
    // The administrator changes the sync account's password in the cloud; the service still has P1.
    await run(['cloud', 'admin', 'set-password', '--url', cloudUrl, '--username', SYNC_ACCOUNT], `${P2}\n`, adminEnv);
    // A password change notification (as the DC agent sends it): password sync tries to deliver it
    // at once and is refused (115, 0, 655). Password sync is first to meet the new cloud password
    // here: a component refused first records the refusal, and nothing presents that secret again.
    const pcn = await request(`${url}${PCN_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${AGENT_TOKEN}` }, body: JSON.stringify({ user: 'pw1', password: CHANGED }) });
    assert.equal(pcn.statusCode, 202, await pcn.body.text());
    await until('events 115 and 655', async () => {
      const ids = new Set((await events()).map((e) => e.id));
      return ids.has(115) && ids.has(655) ? true : undefined;
    }, 60_000, 500);
    await until('health to turn degraded', async () => ((await status()).degraded.some((d: any) => d.check === 'cloud-credential') ? true : undefined), 60_000, 250);
    assert.ok((await status()).passwords.outboxDepth >= 1, 'the change waits in the outbox');
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.reload();
    await page.locator('#health').filter({ hasText: 'Health: degraded' }).waitFor();
    const reason = (await page.locator('ul.degraded li', { hasText: 'cloud-credential' }).textContent()) ?? '';
    assert.match(reason, /Fix: Update the cloud credential/);
    const seen = await events();
    for (const id of [115, 655]) assert.ok(seen.some((e) => e.id === id), `event ${id}`);
    for (const id of [115, 655]) {
      await page.goto(`${url}/console/#/events?id=${id}`);
      await page.getByRole('table', { name: 'events' }).locator('tbody tr td:nth-child(2)', { hasText: String(id) }).first().waitFor();
    }
    await docScreenshot(page, 'console-events.png');

    // The form: a wrong secret is tested and refused (the saved one kept), the right one is saved.
    await page.goto(`${url}/console/#/overview`);
    const form = page.getByRole('form', { name: 'update credentials' });
    await form.getByLabel('Connector').selectOption('cloud');
    await form.getByLabel('New secret').fill(WRONG);
    await form.getByRole('button', { name: 'Test and save' }).click();
    await page.getByRole('alert').filter({ hasText: 'was not accepted' }).waitFor();
    assert.equal(await form.getByLabel('New secret').inputValue(), '', 'the secret is not kept on the page');
    await form.getByLabel('New secret').fill(P2);
    await form.getByRole('button', { name: 'Test and save' }).click();
    await page.locator('#cred-status').filter({ hasText: 'tested and saved' }).waitFor();
    const after = await events();
    assert.ok(after.some((e) => e.id === 6202 && e.details.connector === 'cloud'), 'event 6202 for the refused secret');
    assert.ok(after.some((e) => e.id === 6201 && e.details.connector === 'cloud'), 'event 6201 for the saved one');
    assert.ok(after.some((e) => e.id === 6157 && e.details.user === CONSOLE_USER), 'event 6157 with who');

    // Recovers in the same process: the waiting change is delivered, health is ok again.
    let lastStatus: unknown;
    await until('the waiting change to be delivered', async () => {
      const s = await status();
      lastStatus = s;
      return s.passwords.outboxDepth === 0 && s.status === 'ok' ? true : undefined;
    }, 60_000, 250).catch((e: Error) => assert.fail(`${e.message}: ${JSON.stringify(lastStatus)}`));
    await page.reload();
    await page.locator('#health').filter({ hasText: 'Health: ok' }).waitFor();
    assert.equal(serve!.child.pid, pid);
    assert.equal(serve!.child.exitCode, null, 'the service was not restarted');
    assert.equal(await signIn(cloudUrl, 'pw1@lab.test', CHANGED), 200, 'the change made during the outage works');
  });

  test('deletions held by the threshold are approved from the console, recorded with who and when (6156)', async () => {
    const { page } = b;
    await slapd.modify([3, 4, 5].map((i) => `dn: uid=pw${i},ou=people,dc=lab,dc=test\nchangetype: delete\n`).join('\n'));
    const last = (await status()).cycle.last.id as number;
    await page.goto(`${url}/console/#/overview`);
    // A delta import from OpenLDAP without accesslog does not see deletions: a full sync does.
    await page.getByRole('button', { name: 'Run a full sync' }).click();
    await page.getByRole('status').filter({ hasText: 'Full sync started' }).waitFor();
    const held = await cycleDone(last);
    assert.equal(held.cycle.last.profile, 'full');
    assert.equal(held.cycle.last.error?.code, 'DELETION_THRESHOLD_EXCEEDED');
    assert.equal((await cloudUsers()).length, USERS, 'nothing was deleted');
    await page.reload();
    const panel = page.getByRole('region', { name: 'held deletions' });
    await panel.waitFor();
    assert.match((await panel.textContent()) ?? '', /would delete 3 object\(s\).*threshold \(2\)/);
    await docScreenshot(page, 'console-held-deletions.png');
    await panel.getByRole('button', { name: 'Approve 3 deletions and run' }).click();
    await panel.getByRole('status').filter({ hasText: 'Approved 3 deletion(s)' }).waitFor();
    const done = await cycleDone(held.cycle.last.id);
    assert.equal(done.cycle.last.status, 'success', JSON.stringify(done.cycle.last));
    const users = (await cloudUsers()).map((u) => u.userName).sort();
    assert.deepEqual(users, ['pw0@lab.test', 'pw1@lab.test', 'pw2@lab.test']);
    const approved = (await events()).find((e) => e.id === 6156);
    assert.ok(approved, 'event 6156');
    assert.equal(approved.details.user, CONSOLE_USER);
    assert.equal(approved.details.deletes, 3);
    assert.equal(approved.details.runId, held.cycle.last.id);
    assert.match(String(approved.details.at), /^\d{4}-\d\d-\d\dT/);
  });

  test('the overview charts the last 7 days from what was recorded: cycles, exports, passwords delivered, change to sign-in', async () => {
    const { page } = b;
    await page.goto(`${url}/console/#/search`);
    await page.goto(`${url}/console/#/overview`);
    const charts = page.getByRole('region', { name: 'charts' });
    await charts.getByRole('img', { name: 'Cycle durations (seconds)' }).waitFor();
    const runs = JSON.parse(await cli(['runs', '--json'])) as any;
    const runCount = (Array.isArray(runs) ? runs : runs.runs).length as number;
    assert.equal(await charts.getByRole('img', { name: 'Cycle durations (seconds)' }).locator('rect').count(), runCount);
    const figures = async (title: string) => (await charts.getByRole('table', { name: title, includeHidden: true }).locator('tbody tr').evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent ?? '')))) as string[][];
    const today = new Date().toISOString().slice(0, 10);
    const delivered = (await figures('Password changes delivered')).find((r) => r[0] === today);
    assert.ok(delivered && Number(delivered[1]) >= USERS + 1, `delivered today: ${JSON.stringify(delivered)}`);
    const latency = (await figures('Change to sign-in, median')).find((r) => r[0] === today);
    assert.ok(latency && latency[1] !== '—' && Number(latency[1]) >= 0, `latency today: ${JSON.stringify(latency)}`);
    const exports = await figures('Exports per cycle');
    assert.equal(exports[0]?.[1], String(USERS), 'the first cycle exported every user');
    await docScreenshot(page, 'console-charts.png');
  });

  test('the cloud portal: find the user, see its sign-in in the logs, unlock a locked account', async () => {
    const { page } = b;
    // pw0 is locked out by different wrong passwords (smart lockout ignores repeats).
    for (let i = 0; i < 12; i++) await signIn(cloudUrl, 'pw0@lab.test', `Wrong-password-${i}!`);
    assert.notEqual(await signIn(cloudUrl, 'pw0@lab.test', passwordOf(0)), 200, 'pw0 is locked out');

    await page.goto(`${cloudUrl}/portal/`);
    await page.getByLabel('User name').fill('admin');
    await page.getByLabel('Password').fill(ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Users' }).waitFor();
    await page.getByLabel('User name or display name').fill('pw2');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('table', { name: 'users' }).getByRole('link', { name: 'pw2@lab.test' }).click();
    await page.getByRole('heading', { name: 'pw2@lab.test' }).waitFor();
    await page.getByRole('link', { name: 'Sign-ins of this user' }).click();
    const rows = page.getByRole('table', { name: 'audit records' }).locator('tbody tr', { hasText: 'signin' });
    await rows.first().waitFor();
    const cells = await rows.first().locator('td').allTextContents();
    assert.deepEqual([cells[1], cells[2], cells[5]], ['signin', 'pw2@lab.test', 'success'], cells.join(' | '));

    await page.getByRole('link', { name: 'Locked accounts' }).click();
    const locked = page.getByRole('table', { name: 'locked accounts' });
    await locked.locator('tbody tr', { hasText: 'user:pw0@lab.test' }).first().waitFor();
    await docScreenshot(page, 'portal-locked.png');
    await locked.getByRole('button', { name: 'Unlock user:pw0@lab.test' }).first().click();
    await locked.locator('tbody tr', { hasText: 'nothing to show' }).waitFor();
    assert.equal(await signIn(cloudUrl, 'pw0@lab.test', passwordOf(0)), 200, 'pw0 signs in after the unlock');
  });

  test('the new state changes refuse a missing CSRF token and another origin; a sync account cannot sign in to the portal', async () => {
    const post = async (base: string, p: string, headers: Record<string, string>, body: unknown) => {
      const res = await request(`${base}${p}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
      const text = await res.body.text();
      printed.push({ what: `POST ${p}`, text: JSON.stringify(res.headers) + text });
      return { status: res.statusCode, text, headers: res.headers };
    };
    const si = await post(url, '/console/api/signin', { origin: url }, { username: CONSOLE_USER, password: CONSOLE_PASSWORD });
    assert.equal(si.status, 200);
    const cookie = String(si.headers['set-cookie']).split(';')[0]!;
    const csrf = JSON.parse(si.text).csrf as string;
    const credList = async () => JSON.parse(await cli(['credentials', 'list', '--json'])).credentials.find((c: any) => c.connector === 'cloud').changedAt as string;
    const changedAt = await credList();
    const refusedBefore = (await events()).filter((e) => e.id === 6154).length;
    for (const [p, body] of [['/console/api/credentials/cloud', { secret: WRONG }], ['/console/api/approve-deletions', { runId: 1 }], ['/console/api/passwords/resync', { all: true }], ['/console/api/runs', { profile: 'full' }], ['/console/api/objects/1/trace', {}]] as const) {
      const noToken = await post(url, p, { cookie, origin: url }, body);
      assert.equal(noToken.status, 403, `${p} without the token`);
      assert.equal(JSON.parse(noToken.text).error.code, 'CSRF_TOKEN');
      const foreign = await post(url, p, { cookie, origin: 'http://evil.example', 'x-csrf-token': csrf }, body);
      assert.equal(foreign.status, 403, `${p} from another origin`);
      assert.equal(JSON.parse(foreign.text).error.code, 'CSRF_ORIGIN');
    }
    assert.equal(await credList(), changedAt, 'the credential was not touched');
    assert.equal((await events()).filter((e) => e.id === 6154).length, refusedBefore + 10, 'each refusal is event 6154');
    // The sync account has the right password, and still does not get in.
    const sync = await post(cloudUrl, '/portal/api/signin', { origin: cloudUrl }, { username: SYNC_ACCOUNT, password: P2 });
    assert.equal(sync.status, 403);
    assert.equal(JSON.parse(sync.text).error.code, 'ROLE_NOT_ALLOWED');
    assert.equal(sync.headers['set-cookie'], undefined);
  });

  test('every page of both consoles carried the CSP; nothing third-party; no secret in any response or output', async () => {
    await b.settle();
    const pages = b.seen.filter((s) => s.url.startsWith(`${url}/console`) || s.url.startsWith(`${cloudUrl}/portal`));
    assert.ok(pages.length > 20, `${pages.length} responses`);
    for (const s of pages) assert.equal(s.headers['content-security-policy'], CSP, s.url);
    for (const s of b.seen) assert.ok(s.url.startsWith(url) || s.url.startsWith(cloudUrl), s.url);
    assert.ok(!b.consoleMessages.some((m) => /Content Security Policy|pageerror/i.test(m)), b.consoleMessages.join('\n'));
    const scanned = await assertNoTestSecrets(
      { passwords: [CONSOLE_PASSWORD, ADMIN_PASSWORD, P1, P2, WRONG, CHANGED, ...Array.from({ length: USERS }, (_, i) => passwordOf(i))], tokens: { 'agent token': AGENT_TOKEN } },
      { texts: [...b.seen.map((s) => ({ what: s.url, text: JSON.stringify(s.headers) + s.body })), ...printed] },
    );
    assert.ok(scanned.texts > 30, `${scanned.texts} texts scanned`);
  });
});
