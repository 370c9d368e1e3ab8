/**
 * The console's bounded search pages in real Chromium: a search by an attribute outside the index
 * says how many objects it has searched of how many, and "Search further" goes on until every
 * object is searched. The console's own fastify routes on loopback, an engine database on disk
 * written as the engine writes it; the page budget is cut to a few objects (a count, not a time, so
 * the test does not depend on the machine's speed).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { writeConsoleAccount } from '../../src/console/account.js';
import { consolePlugin } from '../../src/console/plugin.js';
import { openContext, type EngineContext } from '../../src/engine/context.js';
import { launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { skipUnless } from '../helpers/integration.js';

const USERS = 30;
const PASSWORD = 'Search-console-pass-1!';

describe('console search pages in Chromium', { skip: skipUnless('chromium') }, () => {
  let dir: string;
  let ctx: EngineContext;
  let app: FastifyInstance;
  let url: string;
  let b: TestBrowser;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'idsync-console-search-ui-'));
    writeFileSync(path.join(dir, 'idsync.yaml'), stringify({ dataDir: './data', connectors: [{ name: 'hr', type: 'ldif', path: './x.ldif' }], cloud: { url: 'http://127.0.0.1:9' } }));
    ctx = openContext(loadConfig(path.join(dir, 'idsync.yaml')));
    const insert = ctx.db.prepare("INSERT INTO mv_objects (object_type, source_anchor, attrs, pending_export, updated_at) VALUES ('user', ?, ?, 0, ?)");
    for (let i = 1; i <= USERS; i++) insert.run(`anchor-${i}`, JSON.stringify({ userName: `u${i}@example.test`, displayName: `User ${i}`, department: i % 10 === 0 ? 'Sales' : 'Ops' }), new Date().toISOString());
    await writeConsoleAccount(ctx.loaded.dataDir, 'operator', PASSWORD, { logN: 10, r: 8, p: 1 });
    app = Fastify({ logger: false });
    await app.register(consolePlugin, {
      prefix: '/console',
      ctx,
      health: () => {
        throw new Error('not used');
      },
      runNow: async () => undefined,
      secure: false,
      searchBudget: { ms: 60_000, rows: 7 },
    });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    b = await launchBrowser();
  });

  after(async () => {
    await b?.close();
    await app?.close();
    ctx?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a walk says how far it searched, and "Search further" goes on to the end', async () => {
    const { page } = b;
    await page.goto(`${url}/console/#/search`);
    await page.getByLabel('User name').fill('operator');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'Search' }).click();
    await page.getByLabel('Attribute').fill('department');
    await page.getByLabel('Operator').selectOption('eq');
    await page.getByLabel('Value').fill('sales');
    await page.getByRole('button', { name: 'Search', exact: true }).click();

    const progress = page.locator('#search-progress');
    await progress.filter({ hasText: `of ${USERS} objects` }).waitFor();
    const found = new Set<string>();
    const seenProgress: string[] = [];
    for (let pages = 0; ; pages++) {
      assert.ok(pages < USERS, 'searching further ends');
      const text = (await progress.textContent()) ?? '';
      seenProgress.push(text);
      for (const t of await page.getByRole('table', { name: 'search results' }).locator('tbody tr td:nth-child(3)').allTextContents()) found.add(t);
      const further = page.getByRole('button', { name: 'Search further' });
      if (!(await further.count())) break;
      await further.click();
      await progress.filter({ hasNotText: text }).waitFor();
    }
    assert.match(seenProgress[0]!, new RegExp(`Searched 7 of ${USERS} objects`));
    assert.match(seenProgress[seenProgress.length - 1]!, new RegExp(`Searched ${USERS} of ${USERS} objects\\.`));
    assert.deepEqual([...found].sort(), ['User 10', 'User 20', 'User 30']);
    assert.deepEqual(b.consoleMessages.filter((m) => m.startsWith('pageerror') || /Content Security Policy/.test(m)), []);
  });
});
