/**
 * The console's preview and password resync, in Chromium against a real `idsync serve`
 * SyncService (LDAP source on a real slapd with NT hashes, engine SQLite on disk) and a real cloud
 * directory over HTTP: the preview page shows the next cycle attribute by attribute and writes
 * nothing; "Resync this password" queues the user's last known hash again and it is delivered.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { writeConsoleAccount } from '../../src/console/account.js';
import { EVENTS } from '../../src/events/catalog.js';
import { SyncService } from '../../src/service/service.js';
import { launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { skipUnless } from '../helpers/integration.js';
import { startSambaNtLab, type SambaNtLab } from '../helpers/passwords.js';
import { until } from '../helpers/processes.js';

const CONSOLE_USER = 'operator';
const CONSOLE_PASSWORD = 'Console-pass-9012!';

describe('console preview and password resync in Chromium', { skip: skipUnless('chromium') || skipUnless('slapd') }, () => {
  let lab: SambaNtLab;
  let service: SyncService;
  let url: string;
  let b: TestBrowser;
  const events = () => lab.ctx.events.query({ limit: 5000 });

  before(async () => {
    lab = await startSambaNtLab({ count: 4, uidPrefix: 'rs', cnPrefix: 'Rs', passwordOf: (i) => `Resync-${i}-Pass!` }, 'idsync-console-actions-');
    await writeConsoleAccount(lab.ctx.loaded.dataDir, CONSOLE_USER, CONSOLE_PASSWORD, { logN: 10, r: 8, p: 1 });
    service = new SyncService(lab.ctx, { port: 0, intervalMs: 3_600_000, logger: false, passwords: { pollMs: 200 } });
    ({ url } = await service.start());
    await service.idle();
    b = await launchBrowser();
    await b.page.goto(`${url}/console/`);
    await b.page.getByLabel('User name').fill(CONSOLE_USER);
    await b.page.getByLabel('Password').fill(CONSOLE_PASSWORD);
    await b.page.getByRole('button', { name: 'Sign in' }).click();
    await b.page.getByRole('heading', { name: 'Overview' }).waitFor();
  });

  after(async () => {
    await b?.close();
    await service?.stop(5000).catch(() => undefined);
    await lab?.close(); // closes the context again: harmless
  });

  test('the preview shows an update attribute by attribute and a delete, and writes nothing to the cloud', async () => {
    const { page } = b;
    await lab.slapd.modify('dn: uid=rs1,ou=people,dc=lab,dc=test\nchangetype: modify\nreplace: cn\ncn: Renamed One\n');
    const before = (await lab.cloud.all('Users')).map((u) => [u.userName, u.displayName]).sort();
    await page.getByRole('link', { name: 'Preview the next cycle' }).click();
    const table = page.getByRole('table', { name: 'preview' });
    const row = table.locator('tbody tr', { hasText: 'rs1' });
    await row.waitFor({ timeout: 120_000 });
    const cells = await row.locator('td').allTextContents();
    assert.equal(cells[1], 'update', cells.join(' | '));
    assert.match(cells[5] ?? '', /displayName: Rs 1 → Renamed One/);
    assert.match((await page.locator('main p').first().textContent()) ?? '', /nothing was written to the cloud directory/);
    assert.deepEqual((await lab.cloud.all('Users')).map((u) => [u.userName, u.displayName]).sort(), before, 'the cloud is unchanged');
    assert.ok(events().some((e) => e.id === EVENTS.CONSOLE_RUN_REQUESTED.id && e.details.profile === 'preview' && e.details.user === CONSOLE_USER));
  });

  test('"Resync this password" queues the last known hash again and it is delivered (event 6159)', async () => {
    const { page } = b;
    const mvId = (lab.ctx.db.prepare("SELECT mv_id FROM cs_objects WHERE dn = 'uid=rs2,ou=people,dc=lab,dc=test'").get() as { mv_id: number }).mv_id;
    const successes = () => (lab.ctx.db.prepare("SELECT count(*) AS n FROM phs_status WHERE status = 'Success' AND anchor = (SELECT anchor FROM cs_objects WHERE mv_id = ?)").get(mvId) as { n: number }).n;
    const before = successes();
    assert.ok(before >= 1, 'the first cycle delivered rs2\'s password');
    await page.goto(`${url}/console/#/objects/${mvId}`);
    await page.getByRole('button', { name: 'Resync this password' }).click();
    await page.getByRole('status').filter({ hasText: '1 user(s) queued for a password resync' }).waitFor();
    await until('the resynced hash to be delivered', () => successes() > before, 30_000, 100);
    const e = events().find((x) => x.id === EVENTS.CONSOLE_PASSWORDS_RESYNC.id);
    assert.equal(e?.details.user, CONSOLE_USER);
    assert.equal(e?.details.queued, 1);
    assert.equal(await lab.cloud.holdsPassword('rs2@lab.test', 'Resync-2-Pass!'), true);
  });
});
