/**
 * Password hash sync from an LDAP directory holding NT hashes (OpenLDAP with the samba schema's
 * sambaNTPassword), through a sync cycle, to a sign-in at the cloud directory — and the NT hash is
 * never stored in the connector space.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { openContext, type EngineContext } from '../../src/engine/context.js';
import { runCycle } from '../../src/engine/cycle.js';
import { ntHash } from '../../src/passwords/hash.js';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { skipUnless } from '../helpers/integration.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const USERS = 25;

async function signIn(cloud: TestCloud, username: string, password: string): Promise<number> {
  const res = await request(`${cloud.url}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username, password }).toString(),
  });
  await res.body.dump();
  return res.statusCode;
}

describe('e2e: sambaNTPassword on OpenLDAP → cloud sign-in', { skip: skipUnless('slapd') }, () => {
  let slapd: Slapd;
  let cloud: TestCloud;
  let dir: string;
  let ctx: EngineContext;

  before(async () => {
    const entries: string[] = [];
    for (let i = 0; i < USERS; i++) {
      const nt = (await ntHash(`Initial-${i}!`)).toString('hex').toUpperCase();
      entries.push(
        [
          `dn: uid=pw${i},ou=people,dc=lab,dc=test`,
          'objectClass: inetOrgPerson',
          'objectClass: sambaSamAccount',
          `uid: pw${i}`,
          `cn: Pw ${i}`,
          `sn: ${i}`,
          `mail: pw${i}@lab.test`,
          `sambaSID: S-1-5-21-1-2-3-${1000 + i}`,
          `sambaNTPassword: ${nt}`,
          '',
        ].join('\n'),
      );
    }
    slapd = await startSlapd({ sambaSchema: true, seedLdif: entries.join('\n') });
    cloud = await startTestCloud();
    dir = mkdtempSync(path.join(tmpdir(), 'idsync-phs-ldap-'));
    const file = path.join(dir, 'idsync.yaml');
    writeFileSync(
      file,
      stringify({
        dataDir: './data',
        connectors: [{ name: 'ldap', type: 'ldap', url: slapd.url, bindDn: slapd.adminDn, baseDn: slapd.baseDn }],
        cloud: { url: cloud.url, auth: { type: 'client_credentials', clientId: cloud.syncClientId } },
      }),
    );
    ctx = openContext(loadConfig(file));
    ctx.credentials.set('ldap', slapd.adminPassword);
    ctx.credentials.set('cloud', cloud.syncSecret);
  });

  after(async () => {
    ctx?.close();
    await cloud?.close();
    await slapd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the first cycle syncs every user and every user signs in with the on-premises password', async () => {
    const run = await runCycle(ctx);
    assert.equal(run.status, 'success', JSON.stringify(run.errors));
    for (let i = 0; i < USERS; i++) assert.equal(await signIn(cloud, `pw${i}@lab.test`, `Initial-${i}!`), 200, `pw${i} signs in`);
    assert.equal(await signIn(cloud, 'pw0@lab.test', 'wrong'), 400);
  });

  test('a changed sambaNTPassword reaches the cloud at the next cycle: the new password works, the old one not', async () => {
    const nt = (await ntHash('Changed-0!')).toString('hex').toUpperCase();
    await slapd.modify(`dn: uid=pw0,ou=people,dc=lab,dc=test\nchangetype: modify\nreplace: sambaNTPassword\nsambaNTPassword: ${nt}\n`);
    const run = await runCycle(ctx);
    assert.equal(run.status, 'success');
    assert.equal(await signIn(cloud, 'pw0@lab.test', 'Changed-0!'), 200);
    assert.equal(await signIn(cloud, 'pw0@lab.test', 'Initial-0!'), 400);
    assert.equal(await signIn(cloud, 'pw1@lab.test', 'Initial-1!'), 200);
  });

  test('no NT hash, OrgId hash or password is in the connector space, the run records or the events', async () => {
    const cs = ctx.db.prepare('SELECT attrs FROM cs_objects').all() as { attrs: string }[];
    assert.ok(cs.length >= USERS);
    for (const r of cs) assert.doesNotMatch(r.attrs, /sambantpassword/i);
    const secrets = [(await ntHash('Changed-0!')).toString('hex'), 'Changed-0!', 'Initial-1!'];
    ctx.db.pragma('wal_checkpoint(TRUNCATE)');
    const tables = ['cs_objects', 'mv_objects', 'runs', 'run_errors', 'events', 'phs_status'];
    for (const t of tables) {
      const dump = JSON.stringify(ctx.db.prepare(`SELECT * FROM ${t}`).all()).toLowerCase();
      for (const s of secrets) assert.ok(!dump.includes(s.toLowerCase()), `${t} holds no secret`);
      assert.doesNotMatch(dump, /v1;pph1_md4/, `${t} holds no OrgId hash`);
    }
    const file = readFileSync(path.join(dir, 'data', 'idsync.db')).toString('latin1').toLowerCase();
    for (const s of secrets) assert.ok(!file.includes(s.toLowerCase()), 'the database file holds no plaintext secret');
  });
});
