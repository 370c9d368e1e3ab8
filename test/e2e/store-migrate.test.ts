/**
 * `idsync store migrate --to postgres://…`: an installation on SQLite with password changes waiting
 * in the outbox (the cloud refused the sync credential) is copied to PostgreSQL — credentials,
 * outbox, watermarks, history — verified, a second copy into the now non-empty database is refused,
 * and the installation, switched to PostgreSQL, finishes the work: every waiting change signs in.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { STORE_PASSWORD_ENV } from '../../src/config/store.js';
import { loadConfig } from '../../src/config/load.js';
import { openContext } from '../../src/engine/context.js';
import { runCycle } from '../../src/engine/cycle.js';
import { outboxDepth } from '../../src/passwords/outbox.js';
import { dialectOf } from '../../src/store/database.js';
import { skipUnless } from '../helpers/integration.js';
import { sambaNtPassword, startSambaNtLab, type SambaNtLab } from '../helpers/passwords.js';
import { skipUnlessPostgres } from '../helpers/postgres.js';
import { signIn } from '../helpers/processes.js';
import { runCli } from '../helpers/run-cli.js';
import { postgresStoreConfig } from '../helpers/store.js';

const USERS = 12;
const CHANGED = 5;

describe('e2e: idsync store migrate (SQLite → PostgreSQL) with work pending', { skip: skipUnless('slapd') || skipUnlessPostgres() }, () => {
  let lab: SambaNtLab;

  before(async () => {
    lab = await startSambaNtLab({ count: USERS, uidPrefix: 'mg', cnPrefix: 'Mg', passwordOf: (i) => `Initial-${i}!` }, 'idsync-store-migrate-', 'sqlite');
  });
  after(async () => {
    await lab?.close();
  });

  test('a SQLite installation with queued password changes moves to PostgreSQL and delivers them there', async () => {
    assert.equal(dialectOf(lab.ctx.db), 'sqlite');
    const first = await runCycle(lab.ctx);
    assert.equal(first.status, 'success', JSON.stringify(first.errors));

    // The cloud refuses the sync credential: the changed passwords wait in the outbox.
    for (let i = 0; i < CHANGED; i++) {
      await lab.slapd.modify(`dn: uid=mg${i},ou=people,dc=lab,dc=test\nchangetype: modify\nreplace: sambaNTPassword\nsambaNTPassword: ${await sambaNtPassword(`Changed-${i}!`)}\n`);
    }
    lab.ctx.credentials.set('cloud', 'not-the-sync-secret');
    const refused = await runCycle(lab.ctx);
    assert.notEqual(refused.status, 'success');
    const waiting = outboxDepth(lab.ctx.db);
    assert.equal(waiting.depth, CHANGED, 'the changed passwords wait in the outbox');
    const before = {
      runs: lab.ctx.db.prepare('SELECT COUNT(*) FROM runs').pluck().get() as number,
      events: lab.ctx.db.prepare('SELECT COUNT(*) FROM events').pluck().get() as number,
      watermarks: lab.ctx.db.prepare('SELECT connector, value FROM watermarks ORDER BY connector').all(),
      ldapSecret: await lab.ctx.credentials.resolver('ldap')(),
      passwordUsers: lab.ctx.db.prepare('SELECT COUNT(*) FROM phs_users').pluck().get() as number,
    };
    assert.ok(before.passwordUsers > CHANGED, 'the users whose password did not change are known too');
    assert.ok(before.watermarks.length > 0, 'the LDAP connector has a watermark');
    lab.ctx.close();

    const store = await postgresStoreConfig();
    const env = { [STORE_PASSWORD_ENV]: process.env[STORE_PASSWORD_ENV] };
    // A password in the URL is refused (shell history, process list).
    const withPassword = new URL(store.url);
    withPassword.password = 'in-the-url';
    const bad = await runCli(['-c', lab.config, 'store', 'migrate', '--to', withPassword.toString()], { env });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /must not contain the password/);
    assert.doesNotMatch(bad.stdout + bad.stderr, /in-the-url/);

    const migrated = await runCli(['-c', lab.config, 'store', 'migrate', '--to', store.url, '--json'], { env });
    assert.equal(migrated.code, 0, migrated.stdout + migrated.stderr);
    const report = JSON.parse(migrated.stdout) as { verified: boolean; rows: number; tables: { table: string; rows: number }[]; config: string };
    assert.equal(report.verified, true);
    const rowsOf = (t: string) => report.tables.find((x) => x.table === t)?.rows;
    assert.equal(rowsOf('phs_users'), before.passwordUsers);
    assert.equal(rowsOf('runs'), before.runs);
    assert.equal(rowsOf('credentials'), 2);
    assert.ok((rowsOf('cs_objects') ?? 0) >= USERS);
    assert.match(report.config, /type: postgres/);
    assert.doesNotMatch(migrated.stdout + migrated.stderr, new RegExp(process.env[STORE_PASSWORD_ENV]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'the database password is never printed');

    // The target is no longer empty: a second copy is refused.
    const again = await runCli(['-c', lab.config, 'store', 'migrate', '--to', store.url], { env });
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /not empty/);

    // Switch the configuration to PostgreSQL, as the command said; the SQLite file is not used again.
    const doc = parse(readFileSync(lab.config, 'utf8')) as Record<string, unknown>;
    writeFileSync(lab.config, stringify({ ...doc, store }));
    const ctx = (lab.ctx = openContext(loadConfig(lab.config)));
    assert.equal(dialectOf(ctx.db), 'postgres');
    assert.equal(outboxDepth(ctx.db).depth, CHANGED, 'the outbox came along');
    assert.deepEqual(ctx.db.prepare('SELECT connector, value FROM watermarks ORDER BY connector').all(), before.watermarks, 'the watermarks came along');
    assert.equal(ctx.db.prepare('SELECT COUNT(*) FROM events').pluck().get(), before.events, 'the event history came along');
    assert.equal(await ctx.credentials.resolver('ldap')(), before.ldapSecret, 'the sealed credentials open with the same key');

    // The fix on PostgreSQL: the right cloud secret. The next cycle delivers every waiting change.
    ctx.credentials.set('cloud', lab.cloud.syncSecret);
    const done = await runCycle(ctx);
    assert.equal(done.status, 'success', JSON.stringify(done.errors));
    assert.equal(outboxDepth(ctx.db).depth, 0, 'the outbox is empty');
    for (let i = 0; i < CHANGED; i++) {
      assert.equal(await signIn(lab.cloud.url, `mg${i}@lab.test`, `Changed-${i}!`), 200, `mg${i} signs in with the new password`);
      assert.equal(await signIn(lab.cloud.url, `mg${i}@lab.test`, `Initial-${i}!`), 400, `mg${i}'s old password no longer works`);
    }
    assert.equal(await signIn(lab.cloud.url, `mg${CHANGED}@lab.test`, `Initial-${CHANGED}!`), 200);
    // The run ids continue after the copied history.
    const ids = ctx.db.prepare('SELECT id FROM runs ORDER BY id').pluck().all() as number[];
    assert.equal(ids.length, before.runs + 1);
    assert.equal(new Set(ids).size, ids.length);
  });
});
