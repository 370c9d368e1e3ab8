/**
 * A source connector's identity is its name (src/engine/connector-identity.ts).
 *
 * The defect this reproduces: an administrator renamed a connector in idsync.yaml (`ldap` → `corp`).
 * The next `idsync sync` imported every object again under the new name, projected a second
 * metaverse object per person, adopted the existing cloud users by externalId and failed with a raw
 * SQLite "UNIQUE constraint failed: export_objects.cloud_id" (the old metaverse object's export row
 * still held that cloud id). Now the cycle refuses before it touches anything, names the connector
 * and the two commands; `idsync connectors rename` moves every row in one transaction, and
 * `idsync connectors forget` removes a connector on purpose through the normal export and its
 * deletion threshold (production default "500 or 10%").
 *
 * Real parts: OpenLDAP holding NT hashes (sambaNTPassword) or LDIF files as sources, the cloud
 * directory over HTTP, the store on disk (SQLite, or PostgreSQL with IDSYNC_TEST_STORE=postgres),
 * and the real `idsync` command line in a child process.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { isIdsyncError } from '../../src/core/errors.js';
import { connectorSpaceNames, renameConnector } from '../../src/engine/connector-identity.js';
import { openContext, type EngineContext } from '../../src/engine/context.js';
import { openDatabase, type Database } from '../../src/store/database.js';
import { EVENTS } from '../../src/events/catalog.js';
import { SyncService } from '../../src/service/service.js';
import { allMigrations } from '../../src/app/migrations.js';
import { ldifConnector, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { skipUnless } from '../helpers/integration.js';
import { sambaNtPassword, startSambaNtLab, type SambaNtLab } from '../helpers/passwords.js';
import { signIn } from '../helpers/processes.js';
import { runCli, type CliRun } from '../helpers/run-cli.js';

/** Every row of the tables a connector's state lives in, sorted: equal snapshots = nothing changed. */
function storeSnapshot(db: Database): Record<string, string[]> {
  const tables: Record<string, string> = {
    cs_objects: 'SELECT connector, anchor, object_type, dn, attrs, hash, pending, mv_id FROM cs_objects',
    cs_members: 'SELECT * FROM cs_members',
    mv_objects: 'SELECT id, object_type, source_anchor, attrs, deleted, pending_export FROM mv_objects',
    export_objects: 'SELECT mv_id, cloud_id, exported_hash FROM export_objects',
    watermarks: 'SELECT connector, value FROM watermarks',
    engine_state: 'SELECT key, value FROM engine_state',
    runs: 'SELECT id, profile, status FROM runs',
    run_steps: 'SELECT run_id, seq, connector, step, status FROM run_steps',
    phs_users: 'SELECT connector, anchor, nt_fp, next_attempt_at IS NOT NULL AS waiting FROM phs_users',
    phs_drs_state: 'SELECT connector, state FROM phs_drs_state',
    credentials: 'SELECT connector, ciphertext, changed_at FROM credentials',
    credential_refusals: 'SELECT connector, fingerprint FROM credential_refusals',
  };
  const out: Record<string, string[]> = {};
  for (const [t, sql] of Object.entries(tables)) out[t] = db.prepare<[], Record<string, unknown>>(sql).all().map((r) => JSON.stringify(r)).sort();
  return out;
}

/** The cloud's users as the sync sees them: id, externalId, version. */
async function cloudUsers(lab: { cloud: { all(type: 'Users'): Promise<{ id: string; externalId?: string; userName: string; meta: { version?: string } }[]> } }): Promise<string[]> {
  return (await lab.cloud.all('Users')).map((u) => `${u.userName} ${u.id} ${u.externalId ?? ''} ${u.meta.version ?? ''}`).sort();
}

const cli = (config: string, ...args: string[]): Promise<CliRun> => runCli(['-c', config, ...args]);

function runJson(r: CliRun): { status: string; steps: { step: string; connector: string; adds: number; updates: number; deletes: number }[]; error: { code: string } | null } {
  return JSON.parse(r.stdout) as ReturnType<typeof runJson>;
}

function exportCounts(r: CliRun): { adds: number; updates: number; deletes: number } {
  const e = runJson(r).steps.find((s) => s.step === 'export');
  assert.ok(e, `an export step: ${r.stdout}`);
  return { adds: e.adds, updates: e.updates, deletes: e.deletes };
}

/** A process whose command line says `serve`: what the pid file check takes for the service. */
function fakeServiceProcess(): ChildProcess {
  return spawn(process.execPath, ['-e', 'setTimeout(() => {}, 120000)', 'serve'], { stdio: 'ignore' });
}

describe('a connector renamed in idsync.yaml (OpenLDAP with NT hashes, cloud over HTTP)', { skip: skipUnless('slapd') }, () => {
  const USERS = 6;
  const passwordOf = (i: number) => `Rename-${i}-pass!`;
  let lab: SambaNtLab;
  let ctx: EngineContext;
  const reopen = () => {
    ctx?.close();
    ctx = openContext(loadConfig(lab.config));
  };

  before(async () => {
    lab = await startSambaNtLab({ count: USERS, uidPrefix: 'rn', cnPrefix: 'Rn', passwordOf }, 'idsync-rename-');
    ctx = lab.ctx;
  });
  after(async () => {
    if (ctx !== lab?.ctx) ctx?.close();
    await lab?.close();
  });

  test('first sync: every user is in the cloud and signs in with the on-premises password', async () => {
    const r = await cli(lab.config, 'sync', '--json');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(exportCounts(r).adds, USERS);
    for (let i = 0; i < USERS; i++) assert.equal(await signIn(lab.cloud.url, `rn${i}@lab.test`, passwordOf(i)), 200, `rn${i} signs in`);
  });

  test('regression: after a rename in the YAML, sync (and its preview) refuses with CONNECTOR_NOT_CONFIGURED, not a UNIQUE failure, and changes nothing', async () => {
    const beforeStore = storeSnapshot(ctx.db);
    const beforeCloud = await cloudUsers(lab);
    writeFileSync(lab.config, readFileSync(lab.config, 'utf8').replace('name: ldap', 'name: corp'));
    for (const args of [['sync'], ['sync', '--preview'], ['sync', '--full'], ['sync', '--object', 'uid=rn0,ou=people,dc=lab,dc=test']]) {
      const r = await cli(lab.config, ...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /CONNECTOR_NOT_CONFIGURED/);
      assert.match(r.stderr, /"ldap" \(6 objects\)/);
      assert.match(r.stderr, /idsync connectors rename ldap corp/);
      assert.match(r.stderr, /idsync connectors forget ldap/);
      assert.doesNotMatch(r.stderr + r.stdout, /UNIQUE/i);
    }
    reopen();
    assert.deepEqual(storeSnapshot(ctx.db), beforeStore, 'the store is as it was');
    assert.deepEqual(await cloudUsers(lab), beforeCloud, 'the cloud is as it was');
    const ev = ctx.db.prepare<[], { id: number }>('SELECT id FROM events WHERE id = 6580').all();
    assert.ok(ev.length >= 1, 'event 6580 says why the cycle was refused');
  });

  test('connectors list shows the configured connector and the one only the store knows, with counts', async () => {
    const r = await cli(lab.config, 'connectors', 'list', '--json');
    assert.equal(r.code, 0, r.stderr);
    const list = JSON.parse(r.stdout) as { name: string; configured: boolean; objects: number; users: number; passwordState: number; credential: boolean }[];
    assert.deepEqual(
      list.map((c) => [c.name, c.configured, c.objects, c.users, c.passwordState, c.credential]),
      [
        ['corp', true, 0, 0, 0, false],
        ['ldap', false, USERS, USERS, USERS, true],
      ],
    );
    const text = await cli(lab.config, 'connectors', 'list');
    assert.match(text.stdout, /ldap\s+-\s+NO \(store only\)\s+6/);
  });

  test('rename is refused while the service runs or a cycle of another process is in progress; nothing changes', async () => {
    const beforeStore = storeSnapshot(ctx.db);
    const child = fakeServiceProcess();
    try {
      await new Promise((r) => setTimeout(r, 200));
      const pidFile = path.join(lab.dir, 'data', 'idsync.pid');
      writeFileSync(pidFile, JSON.stringify({ pid: child.pid, port: 1, host: '127.0.0.1', intervalMs: 60000, startedAt: new Date().toISOString(), config: lab.config }));
      let r = await cli(lab.config, 'connectors', 'rename', 'ldap', 'corp');
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, /RUN_IN_PROGRESS[\s\S]*service is running/);
      writeFileSync(pidFile, 'not a pid file'); // no service any more, but a cycle of that process in progress:
      ctx.db.prepare("INSERT INTO runs (profile, status, started_at, pid) VALUES ('cycle', 'running', ?, ?)").run(new Date().toISOString(), child.pid);
      r = await cli(lab.config, 'connectors', 'rename', 'ldap', 'corp');
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, /RUN_IN_PROGRESS[\s\S]*is in progress/);
      ctx.db.prepare('DELETE FROM runs WHERE pid = ?').run(child.pid);
    } finally {
      child.kill();
    }
    assert.deepEqual(storeSnapshot(ctx.db), beforeStore);
  });

  test('connectors rename ldap corp (the YAML already says corp): the next sync adds and deletes nothing, same cloud ids, passwords keep working', async () => {
    const beforeCloud = await cloudUsers(lab);
    const statusRows = ctx.db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM phs_status').get()!.n;
    const r = await cli(lab.config, 'connectors', 'rename', 'ldap', 'corp');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /renamed source connector "ldap" to "corp"/);
    assert.match(r.stdout, /already named "corp"/);
    reopen();
    assert.deepEqual(connectorSpaceNames(ctx.db), ['corp']);
    assert.equal(ctx.db.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM phs_users WHERE connector = 'corp'").get()!.n, USERS, 'password state moved');
    assert.equal(ctx.db.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM run_steps WHERE connector = 'ldap'").get()!.n, 0, 'run history moved');
    assert.equal(ctx.credentials.has('ldap'), false);
    assert.equal(ctx.credentials.get('corp'), lab.slapd.adminPassword, 'the bind password re-sealed under the new name');

    const s = await cli(lab.config, 'sync', '--json');
    assert.equal(s.code, 0, s.stderr + s.stdout);
    assert.deepEqual(exportCounts(s), { adds: 0, updates: 0, deletes: 0 });
    assert.deepEqual(await cloudUsers(lab), beforeCloud, 'same users, same ids, same versions');
    reopen();
    assert.equal(ctx.db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM phs_status').get()!.n, statusRows, 'no password was sent again');
    for (let i = 0; i < USERS; i++) assert.equal(await signIn(lab.cloud.url, `rn${i}@lab.test`, passwordOf(i)), 200, `rn${i} still signs in`);
  });

  test('a password changed after the rename reaches the cloud: the renamed connector works as before', async () => {
    await lab.slapd.modify(`dn: uid=rn1,ou=people,dc=lab,dc=test\nchangetype: modify\nreplace: sambaNTPassword\nsambaNTPassword: ${await sambaNtPassword('After-rename-1!')}\n`);
    const s = await cli(lab.config, 'sync', '--json');
    assert.equal(s.code, 0, s.stderr + s.stdout);
    assert.equal(await signIn(lab.cloud.url, 'rn1@lab.test', 'After-rename-1!'), 200);
  });

  test('connectors rename corp east (the YAML still says corp): the file is rewritten with its comments, the store moves, the cloud sees nothing', async () => {
    const text = readFileSync(lab.config, 'utf8');
    writeFileSync(lab.config, `# our sync service: keep this comment\n${text}`);
    const beforeCloud = await cloudUsers(lab);
    const r = await cli(lab.config, 'connectors', 'rename', 'corp', 'east');
    assert.equal(r.code, 0, r.stderr);
    const after = readFileSync(lab.config, 'utf8');
    assert.match(after, /^# our sync service: keep this comment\n/);
    assert.match(after, /name: east/);
    assert.doesNotMatch(after, /name: corp/);
    const s = await cli(lab.config, 'sync', '--json');
    assert.equal(s.code, 0, s.stderr + s.stdout);
    assert.deepEqual(exportCounts(s), { adds: 0, updates: 0, deletes: 0 });
    assert.deepEqual(await cloudUsers(lab), beforeCloud);
  });
});

const person = (uid: string, n: number, mail = `${uid}@corp.test`) =>
  `dn: uid=${uid},ou=people,dc=x,dc=test\nobjectClass: inetOrgPerson\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\nmail: ${mail}\nentryUUID: ${n.toString(16).padStart(8, '0')}-0000-4000-8000-000000000000\n`;
const ldif = (entries: string[]) => `version: 1\n\n${entries.join('\n')}`;

describe('regression: an LDIF source renamed in the YAML (no credential in the way, no join rules)', () => {
  let lab: EngineLab;
  const big = Array.from({ length: 10 }, (_, i) => person(`b${i}`, 2001 + i));
  before(async () => {
    lab = await startEngineLab({ prefix: 'idsync-rename-ldif-', connectors: [ldifConnector({ name: 'big', path: './big.ldif' })], files: { 'big.ldif': ldif(big) }, keepOpen: false });
    const r = await cli(lab.configFile, 'sync');
    assert.equal(r.code, 0, r.stderr + r.stdout);
  });
  after(() => lab?.close());

  test('a rename in the YAML made the next sync fail on UNIQUE export_objects.cloud_id; now it is refused, and `connectors rename` makes it a no-op for the cloud', async () => {
    const ctx = lab.reopen();
    const beforeStore = storeSnapshot(ctx.db);
    lab.closeContext();
    const beforeCloud = await cloudUsers(lab);
    lab.writeConfig({ connectors: [ldifConnector({ name: 'big-two', path: './big.ldif' })] });
    const r = await cli(lab.configFile, 'sync', '--json');
    assert.equal(r.code, 2, r.stderr + r.stdout);
    assert.match(r.stdout + r.stderr, /CONNECTOR_NOT_CONFIGURED[\s\S]*\\?"big\\?" \(10 objects\)[\s\S]*idsync connectors rename big big-two/);
    assert.doesNotMatch(r.stderr + r.stdout, /UNIQUE/i);
    assert.deepEqual(storeSnapshot(lab.reopen().db), beforeStore);
    lab.closeContext();
    assert.deepEqual(await cloudUsers(lab), beforeCloud);

    // The admin also set a credential for the new name first: it does not block the rename, and is kept.
    lab.reopen().credentials.set('big-two', 'set-for-the-new-name');
    lab.closeContext();
    const renamed = await cli(lab.configFile, 'connectors', 'rename', 'big', 'big-two');
    assert.equal(renamed.code, 0, renamed.stderr);
    assert.equal(lab.reopen().credentials.get('big-two'), 'set-for-the-new-name');
    lab.closeContext();
    const s = await cli(lab.configFile, 'sync', '--json');
    assert.equal(s.code, 0, s.stderr + s.stdout);
    assert.deepEqual(exportCounts(s), { adds: 0, updates: 0, deletes: 0 });
    assert.deepEqual(await cloudUsers(lab), beforeCloud);
    // And back, through the file this time (it names big-two: rewritten to big).
    const back = await cli(lab.configFile, 'connectors', 'rename', 'big-two', 'big');
    assert.equal(back.code, 0, back.stderr);
    assert.match(readFileSync(lab.configFile, 'utf8'), /name: big\n/);
    assert.equal((await cli(lab.configFile, 'sync')).code, 0);
  });

});

describe('rename refusals and atomicity, and forget under the deletion threshold (LDIF sources, cloud over HTTP)', () => {
  // hr: 30 people; extra: 2 of its own and one (u0) joined to hr's by mail; big: 10 of its own.
  let lab: EngineLab;
  const hr = Array.from({ length: 30 }, (_, i) => person(`u${i}`, i + 1));
  const extra = [person('x0', 1001), person('x1', 1002), person('u0-extra', 1003, 'u0@corp.test')];
  const big = Array.from({ length: 10 }, (_, i) => person(`b${i}`, 2001 + i));
  const connectors = {
    hr: ldifConnector({ name: 'hr', path: './hr.ldif' }),
    extra: ldifConnector({ name: 'extra', path: './extra.ldif' }),
    big: ldifConnector({ name: 'big', path: './big.ldif' }),
  };
  const rules = { join: [{ objectType: 'user', attribute: 'mail' }] };
  const withConnectors = (...names: (keyof typeof connectors)[]) => lab.writeConfig({ connectors: names.map((n) => connectors[n]) });

  before(async () => {
    lab = await startEngineLab({
      prefix: 'idsync-forget-',
      connectors: [connectors.hr, connectors.extra, connectors.big],
      rules,
      files: { 'hr.ldif': ldif(hr), 'extra.ldif': ldif(extra), 'big.ldif': ldif(big) },
      keepOpen: false,
    });
  });
  after(() => lab?.close());

  const userNames = async () => (await lab.cloud.all('Users')).map((u: { userName: string }) => u.userName).sort();

  test('first sync: 42 people in the cloud (u0 once: both sources joined)', async () => {
    const r = await cli(lab.configFile, 'sync', '--json');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal((await userNames()).length, 42);
  });

  test('rename refusals change nothing: invalid new name (file:line), unknown old name, new name in use, both names configured', async () => {
    const ctx = lab.reopen();
    const beforeStore = storeSnapshot(ctx.db);
    const beforeYaml = readFileSync(lab.configFile, 'utf8');

    let r = await cli(lab.configFile, 'connectors', 'rename', 'hr', 'Bad_Name');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /CONFIG_INVALID[\s\S]*idsync\.yaml:\d+[\s\S]*connectors\.0\.name/);

    r = await cli(lab.configFile, 'connectors', 'rename', 'hr', 'extra');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /CONNECTOR_NAME_IN_USE/);

    r = await cli(lab.configFile, 'connectors', 'rename', 'ghost', 'spirit');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /names neither "ghost" nor "spirit"/);

    // The store's side, whatever the file says: OLD unknown, NEW holding state.
    assert.throws(() => renameConnector(ctx, 'ghost', 'hr2'), (e) => isIdsyncError(e, 'CONNECTOR_UNKNOWN'));
    assert.throws(() => renameConnector(ctx, 'hr', 'big'), (e) => isIdsyncError(e, 'CONNECTOR_NAME_IN_USE') && /30 objects|10 objects/.test(e.message));
    assert.throws(() => renameConnector(ctx, 'hr', 'cloud'), (e) => isIdsyncError(e, 'CONFIG_INVALID'));

    assert.deepEqual(storeSnapshot(ctx.db), beforeStore);
    assert.equal(readFileSync(lab.configFile, 'utf8'), beforeYaml);
    lab.closeContext();
  });

  test('rename is one transaction: a clash in the middle (a replication state left under the new name) leaves every row as it was', async () => {
    const ctx = lab.reopen();
    const now = new Date().toISOString();
    // Rows the up-front checks do not look at, so the failure comes after the connector space,
    // watermark and run history have been moved inside the transaction.
    ctx.db.prepare("INSERT INTO phs_drs_state (connector, invocation_id, state, updated_at) VALUES ('hr', 'a', '{}', ?), ('hr-new', 'b', '{}', ?)").run(now, now);
    const beforeStore = storeSnapshot(ctx.db);
    assert.throws(
      () => renameConnector(ctx, 'hr', 'hr-new'),
      (e) => isIdsyncError(e, 'STORE_FAILED') && /nothing was changed/.test(e.message),
    );
    assert.deepEqual(storeSnapshot(ctx.db), beforeStore, 'every row as it was');
    assert.deepEqual(connectorSpaceNames(ctx.db), ['big', 'extra', 'hr']);
    ctx.db.prepare("DELETE FROM phs_drs_state WHERE connector IN ('hr', 'hr-new')").run();
    lab.closeContext();
  });

  test('forget: refused while configured and without --yes off a terminal (counts shown first); then the next cycle deletes exactly what only it contributed', async () => {
    let r = await cli(lab.configFile, 'connectors', 'forget', 'extra', '--yes');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /CONNECTOR_NAME_IN_USE[\s\S]*still in/);

    withConnectors('hr', 'big');
    r = await cli(lab.configFile, 'sync');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /CONNECTOR_NOT_CONFIGURED[\s\S]*"extra" \(3 objects\)/);

    const ctx = lab.reopen();
    const beforeStore = storeSnapshot(ctx.db);
    lab.closeContext();
    r = await cli(lab.configFile, 'connectors', 'forget', 'extra');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /needs --yes/);
    assert.match(r.stdout, /holds 3 objects \(3 users, 0 groups\)/);
    assert.match(r.stdout, /the 2 object\(s\) only it contributes/);
    assert.match(r.stdout, /recomputes 1 object\(s\)/);
    assert.deepEqual(storeSnapshot(lab.reopen().db), beforeStore, 'nothing changed without --yes');
    lab.closeContext();

    const cloudBefore = (await lab.cloud.all('Users')) as { id: string; userName: string }[];
    r = await cli(lab.configFile, 'connectors', 'forget', 'extra', '--yes');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /The next cycle deletes 2 object\(s\)/);

    const s = await cli(lab.configFile, 'sync', '--json');
    assert.equal(s.code, 0, s.stderr + s.stdout);
    assert.equal(exportCounts(s).deletes, 2);
    const cloudAfter = (await lab.cloud.all('Users')) as { id: string; userName: string }[];
    const gone = cloudBefore.filter((u) => !cloudAfter.some((a) => a.id === u.id)).map((u) => u.userName);
    assert.equal(gone.length, 2);
    assert.ok(gone.every((n) => /^x[01]@/.test(n) || /^x[01]$/.test(n)), `only extra's own people left the cloud: ${gone.join(', ')}`);
    const u0 = cloudBefore.find((u) => /^u0(@|$)/.test(u.userName));
    assert.ok(u0 && cloudAfter.some((a) => a.id === u0.id), 'u0, which hr contributes too, stays with its cloud id');
    assert.equal(cloudAfter.length, 40);
  });

  test('forgetting a connector with more deletions than the threshold ("500 or 10%"): the cycle stops as for any mass deletion, then --allow-deletes lets it through', async () => {
    withConnectors('hr');
    const f = await cli(lab.configFile, 'connectors', 'forget', 'big', '--yes', '--json');
    assert.equal(f.code, 0, f.stderr);
    assert.equal((JSON.parse(f.stdout) as { deletes: number }).deletes, 10);

    // 10 deletions of 40 exported objects: more than 10% (4).
    const stopped = await cli(lab.configFile, 'sync');
    assert.equal(stopped.code, 1, stopped.stderr + stopped.stdout);
    assert.match(stopped.stdout + stopped.stderr, /DELETION_THRESHOLD_EXCEEDED/);
    assert.equal((await userNames()).length, 40, 'nothing was deleted');

    // The administrator confirms the way the message says: the existing override, once.
    const through = await cli(lab.configFile, 'sync', '--allow-deletes', '--json');
    assert.equal(through.code, 0, through.stderr + through.stdout);
    assert.equal(exportCounts(through).deletes, 10);
    const left = await userNames();
    assert.equal(left.length, 30);
    assert.ok(left.every((n) => n.startsWith('u')));
    const list = await cli(lab.configFile, 'connectors', 'list', '--json');
    assert.deepEqual(
      (JSON.parse(list.stdout) as { name: string }[]).map((c) => c.name),
      ['hr'],
    );
  });
});

test('the check before every cycle reads one index entry per connector, never every object (SQLite plan; bench/connector-guard.ts measures 1M objects)', () => {
  const db = openDatabase(':memory:', allMigrations);
  const texts: string[] = [];
  const prepare = db.prepare.bind(db);
  db.prepare = ((sql: string) => {
    texts.push(sql);
    return prepare(sql);
  }) as typeof db.prepare;
  const insert = prepare("INSERT INTO cs_objects (connector, anchor, object_type, dn, dn_norm, attrs, hash) VALUES (?, ?, 'user', 'x', 'x', '{}', '')");
  for (const c of ['b', 'a', 'c']) for (let i = 0; i < 50; i++) insert.run(c, `${i}`);
  assert.deepEqual(connectorSpaceNames(db), ['a', 'b', 'c']);
  db.prepare = prepare;
  assert.equal(texts.length, 1);
  const plan = (prepare(`EXPLAIN QUERY PLAN ${texts[0]!}`).all() as { detail: string }[]).map((r) => r.detail);
  assert.ok(plan.some((d) => /^SEARCH cs_objects USING (COVERING )?INDEX/.test(d)), plan.join(' / '));
  assert.ok(!plan.some((d) => /^SCAN cs_objects\b/.test(d)), `no scan of cs_objects: ${plan.join(' / ')}`);
  db.close();
});

describe("the service's cycles refuse too (idsync serve, configuration reloaded at the cycle's start)", () => {
  let lab: EngineLab;
  let service: SyncService | undefined;
  let serviceCtx: EngineContext;
  const people = Array.from({ length: 5 }, (_, i) => person(`s${i}`, 3001 + i));
  before(async () => {
    lab = await startEngineLab({ prefix: 'idsync-rename-serve-', connectors: [ldifConnector({ name: 'hr', path: './hr.ldif' })], files: { 'hr.ldif': ldif(people) } });
    serviceCtx = lab.detachContext(); // the service closes it
    service = new SyncService(serviceCtx, { port: 0, intervalMs: 3_600_000, logger: false });
    await service.start();
  });
  after(async () => {
    await service?.stop(5000).catch(() => undefined);
    await lab?.close();
  });

  test('a rename in the file reaches the running service: its next cycle is refused with event 6580 and the cloud is untouched; after `connectors rename` it runs clean', async () => {
    // The service runs a cycle as it starts (on PostgreSQL once it holds the leader lease): wait for it.
    for (let waited = 0; (await lab.cloud.all('Users')).length < 5; waited += 100) {
      assert.ok(waited < 60_000, 'the first cycle exported the five people');
      await new Promise((r) => setTimeout(r, 100));
    }
    await service!.idle();
    const beforeCloud = await cloudUsers(lab);
    lab.writeConfig({ connectors: [ldifConnector({ name: 'people', path: './hr.ldif' })] });
    utimesSync(lab.configFile, new Date(), new Date(Date.now() + 5000)); // a new mtime even within the same millisecond
    const refused = await service!.runNow();
    assert.equal(refused, undefined, 'no run was started');
    const ev = serviceCtx.events.latest(EVENTS.CONNECTOR_NOT_CONFIGURED);
    assert.ok(ev, 'event 6580 written');
    assert.match(ev.message, /"hr" \(5 objects\)/);
    assert.deepEqual(await cloudUsers(lab), beforeCloud);

    // The rename of the store (the service is not a daemon with a pid file here; its cycles are
    // between runs, and the rename takes the run lock's check in the same transaction).
    const ctx = lab.reopen();
    renameConnector(ctx, 'hr', 'people');
    lab.closeContext();
    const after = await service!.runNow();
    assert.equal(after?.status, 'success');
    const exp = after!.steps.find((st) => st.step === 'export')!;
    assert.deepEqual([exp.adds, exp.updates, exp.deletes], [0, 0, 0]);
    assert.deepEqual(await cloudUsers(lab), beforeCloud);
  });
});
