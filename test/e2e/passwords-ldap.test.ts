/**
 * Password hash sync from an LDAP directory holding NT hashes (OpenLDAP with the samba schema's
 * sambaNTPassword), through a sync cycle, to a sign-in at the cloud directory — and the NT hash is
 * never stored in the connector space.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCycle } from '../../src/engine/cycle.js';
import { ntHash } from '../../src/passwords/hash.js';
import { dialectOf } from '../../src/store/database.js';
import { skipUnless } from '../helpers/integration.js';
import { sambaNtPassword, startSambaNtLab, type SambaNtLab } from '../helpers/passwords.js';
import { captured, signIn } from '../helpers/processes.js';
import { assertNoTestSecrets } from '../helpers/secret-scan.js';

const USERS = 25;

describe('e2e: sambaNTPassword on OpenLDAP → cloud sign-in', { skip: skipUnless('slapd') }, () => {
  let lab: SambaNtLab;

  before(async () => {
    lab = await startSambaNtLab({ count: USERS, uidPrefix: 'pw', cnPrefix: 'Pw', passwordOf: (i) => `Initial-${i}!` }, 'idsync-phs-ldap-');
  });

  after(async () => {
    await lab?.close();
  });

  test('the first cycle syncs every user and every user signs in with the on-premises password', async () => {
    const run = await runCycle(lab.ctx);
    assert.equal(run.status, 'success', JSON.stringify(run.errors));
    for (let i = 0; i < USERS; i++) assert.equal(await signIn(lab.cloud.url, `pw${i}@lab.test`, `Initial-${i}!`), 200, `pw${i} signs in`);
    assert.equal(await signIn(lab.cloud.url, 'pw0@lab.test', 'wrong'), 400);
  });

  test('a changed sambaNTPassword reaches the cloud at the next cycle: the new password works, the old one not', async () => {
    const nt = await sambaNtPassword('Changed-0!');
    await lab.slapd.modify(`dn: uid=pw0,ou=people,dc=lab,dc=test\nchangetype: modify\nreplace: sambaNTPassword\nsambaNTPassword: ${nt}\n`);
    const run = await runCycle(lab.ctx);
    assert.equal(run.status, 'success');
    assert.equal(await signIn(lab.cloud.url, 'pw0@lab.test', 'Changed-0!'), 200);
    assert.equal(await signIn(lab.cloud.url, 'pw0@lab.test', 'Initial-0!'), 400);
    assert.equal(await signIn(lab.cloud.url, 'pw1@lab.test', 'Initial-1!'), 200);
  });

  test('no NT hash, OrgId hash or password is in the connector space, the run records or the events', async () => {
    const cs = lab.ctx.db.prepare('SELECT attrs FROM cs_objects').all() as { attrs: string }[];
    assert.ok(cs.length >= USERS);
    for (const r of cs) assert.doesNotMatch(r.attrs, /sambantpassword/i);
    const secrets = [(await ntHash('Changed-0!')).toString('hex'), 'Changed-0!', 'Initial-1!'];
    const onSqlite = dialectOf(lab.ctx.db) === 'sqlite';
    if (onSqlite) lab.ctx.db.pragma('wal_checkpoint(TRUNCATE)');
    const tables = ['cs_objects', 'mv_objects', 'runs', 'run_errors', 'events', 'phs_status'];
    for (const t of tables) {
      const dump = JSON.stringify(lab.ctx.db.prepare(`SELECT * FROM ${t}`).all()).toLowerCase();
      for (const s of secrets) assert.ok(!dump.includes(s.toLowerCase()), `${t} holds no secret`);
      assert.doesNotMatch(dump, /v1;pph1_md4/, `${t} holds no OrgId hash`);
    }
    // The file itself, on SQLite (on PostgreSQL the tables above are what the server stores).
    if (onSqlite) {
      const file = readFileSync(path.join(lab.dir, 'data', 'idsync.db')).toString('latin1').toLowerCase();
      for (const s of secrets) assert.ok(!file.includes(s.toLowerCase()), 'the database file holds no plaintext secret');
    }
  });

  test('the secret scan: no password, NT hash or token in any file of either data folder or any output', async () => {
    const passwords = ['Changed-0!', ...Array.from({ length: USERS }, (_, i) => `Initial-${i}!`)];
    const scanned = await assertNoTestSecrets(
      { passwords, tokens: { 'cloud sync secret': lab.cloud.syncSecret, 'cloud admin password': lab.cloud.admin.password } },
      { dirs: [lab.dir, lab.cloud.dataDir], texts: captured },
    );
    assert.ok(scanned.files >= 3, `scanned ${scanned.files} files`);
  });
});
