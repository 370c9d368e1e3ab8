/**
 * The sync cycle end to end on the embedded default: an LDIF source, the engine's SQLite on disk,
 * and the real cloud directory over HTTP.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { EngineContext } from '../../src/engine/context.js';
import { runCycle } from '../../src/engine/cycle.js';
import { syncOneObject } from '../../src/engine/single-object.js';
import type { RunRecord } from '../../src/engine/runs.js';
import type { TestCloud } from '../helpers/cloud.js';
import { ldifConnector, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';

interface Person {
  uid: string;
  ou: string;
  title?: string;
  mail?: string;
}

const BASE = 'dc=example,dc=test';
const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

function ldif(people: Person[], groups: { cn: string; members: string[]; id: number }[]): string {
  const out = ['version: 1', ''];
  people.forEach((p) => {
    const n = Number(p.uid.replace(/\D/g, ''));
    out.push(
      `dn: uid=${p.uid},ou=${p.ou},${BASE}`,
      'objectClass: inetOrgPerson',
      `uid: ${p.uid}`,
      `cn: User ${p.uid}`,
      `sn: ${p.uid}`,
      `mail: ${p.mail ?? `${p.uid}@example.test`}`,
      ...(p.title ? [`title: ${p.title}`] : []),
      `entryUUID: ${uuid(n)}`,
      '',
    );
  });
  for (const g of groups) {
    out.push(`dn: cn=${g.cn},ou=groups,${BASE}`, 'objectClass: groupOfNames', `cn: ${g.cn}`, ...g.members.map((m) => `member: ${m}`), `entryUUID: ${uuid(100000 + g.id)}`, '');
  }
  return out.join('\n');
}

const userDn = (p: Person) => `uid=${p.uid},ou=${p.ou},${BASE}`;
const exportStep = (run: RunRecord) => run.steps.find((s) => s.step === 'export')!;

// Every behaviour holds with SCIM Bulk (the default) and with one request per object.
for (const bulkSize of [200, 1]) describe(`sync cycle: LDIF source → cloud directory (bulkSize ${bulkSize})`, () => {
  let lab: EngineLab;
  let cloud: TestCloud;
  let ldifFile: string;
  let ctx: EngineContext;
  let people: Person[];
  let groups: { cn: string; members: string[]; id: number }[];

  const write = () => writeFileSync(ldifFile, ldif(people, groups));
  const cycle = (opts = {}) => runCycle(ctx, opts);

  before(async () => {
    people = Array.from({ length: 40 }, (_, i) => ({ uid: `u${i + 1}`, ou: i % 2 ? 'sales' : 'eng', title: 'Staff' }));
    groups = [
      { cn: 'eng', id: 1, members: people.filter((p) => p.ou === 'eng').map(userDn) },
      { cn: 'sales', id: 2, members: people.filter((p) => p.ou === 'sales').map(userDn) },
      { cn: 'everyone', id: 3, members: [`cn=eng,ou=groups,${BASE}`, `cn=sales,ou=groups,${BASE}`] },
      { cn: 'top', id: 4, members: [`cn=everyone,ou=groups,${BASE}`, userDn(people[0]!)] },
    ];
    lab = await startEngineLab({ connectors: [ldifConnector()], cloudConfig: { retries: 1, bulkSize }, sync: { deletionThreshold: 5 }, files: { 'source.ldif': ldif(people, groups) } });
    ({ cloud, ctx } = lab);
    ldifFile = lab.path('source.ldif');
  });

  after(() => lab?.close());

  test('first cycle exports every user, group and nested membership', async () => {
    const run = await cycle();
    assert.equal(run.status, 'success', JSON.stringify(run.errors));
    assert.deepEqual(
      { adds: exportStep(run).adds, updates: exportStep(run).updates, deletes: exportStep(run).deletes },
      { adds: 44, updates: 0, deletes: 0 },
    );
    const users = await cloud.all('Users');
    assert.equal(users.length, 40);
    const u1 = users.find((u) => u.userName === 'u1@example.test');
    assert.equal(u1.externalId, uuid(1));
    assert.equal(u1.title, 'Staff');
    assert.equal(u1.active, true);
    const cloudGroups = await cloud.all('Groups');
    const byName = new Map(cloudGroups.map((g) => [g.displayName, g]));
    assert.equal(byName.get('eng').members.length, 20);
    const everyone = byName.get('everyone');
    assert.deepEqual(
      everyone.members.map((m: { value: string; type: string }) => m.type).sort(),
      ['Group', 'Group'],
    );
    assert.deepEqual(new Set(everyone.members.map((m: { value: string }) => m.value)), new Set([byName.get('eng').id, byName.get('sales').id]));
    const top = byName.get('top');
    assert.deepEqual(new Set(top.members.map((m: { value: string }) => m.value)), new Set([everyone.id, u1.id]));
  });

  test('a second cycle with no source change writes nothing to the cloud', async () => {
    const versions = new Map((await cloud.all('Users')).map((u) => [u.id, u.meta.version]));
    const run = await cycle();
    assert.equal(run.status, 'success');
    const e = exportStep(run);
    assert.deepEqual([e.adds, e.updates, e.deletes], [0, 0, 0]);
    for (const u of await cloud.all('Users')) assert.equal(u.meta.version, versions.get(u.id), `user ${u.userName} was rewritten`);
  });

  test('modified, renamed and moved users are updated in place; a removed one is deleted', async () => {
    const before = new Map((await cloud.all('Users')).map((u) => [u.externalId, u]));
    people[1]!.title = 'Lead'; // modified
    people[2]!.ou = 'sales'; // moved (DN changes, entryUUID stays)
    people[3]!.mail = 'renamed4@example.test'; // userName changes
    const removed = people.splice(4, 1)[0]!;
    groups[0]!.members = groups[0]!.members.filter((m) => m !== userDn(removed) && m !== `uid=u3,ou=eng,${BASE}`);
    groups[1]!.members.push(userDn(people[2]!));
    write();
    const run = await cycle();
    assert.equal(run.status, 'success', JSON.stringify(run.errors));
    const e = exportStep(run);
    // users u2, u3, u4 updated; groups eng and sales updated; u5 deleted
    assert.deepEqual([e.adds, e.updates, e.deletes], [0, 5, 1]);
    const users = await cloud.all('Users');
    assert.equal(users.length, 39);
    const after = new Map(users.map((u) => [u.externalId, u]));
    assert.equal(after.get(uuid(2)).title, 'Lead');
    assert.equal(after.get(uuid(3)).id, before.get(uuid(3)).id, 'moved user keeps its cloud id');
    assert.match(after.get(uuid(3))['urn:idsync:params:scim:schemas:extension:onprem:2.0:User'].onPremisesDistinguishedName, /ou=sales/);
    assert.equal(after.get(uuid(4)).userName, 'renamed4@example.test');
    assert.equal(after.get(uuid(4)).id, before.get(uuid(4)).id, 'renamed user keeps its cloud id');
    assert.equal(after.has(uuid(5)), false);
    const sales = (await cloud.all('Groups')).find((g) => g.displayName === 'sales');
    assert.ok(sales.members.some((m: { value: string }) => m.value === after.get(uuid(3)).id));
  });

  test('malformed LDIF fails the run with file:line and deletes nothing', async () => {
    writeFileSync(ldifFile, ldif(people, groups) + '\ndn: uid=bad,ou=eng,dc=example,dc=test\nthis line is not an attribute\n');
    const run = await cycle();
    assert.equal(run.status, 'failed');
    const err = run.errors.find((x) => x.step === 'import');
    assert.ok(err, 'the import error is recorded');
    assert.equal(err.code, 'LDIF_PARSE_ERROR');
    assert.match(err.message, /source\.ldif:\d+/);
    assert.equal(exportStep(run).deletes, 0);
    assert.equal((await cloud.all('Users')).length, 39);
    write();
  });

  test('a value the cloud rejects is reported on its object and the rest is exported', async () => {
    people.push({ uid: 'u900', ou: 'eng', mail: 'not-an-email' }, { uid: 'u901', ou: 'eng' });
    write();
    const run = await cycle();
    assert.equal(run.status, 'completed-with-errors');
    const err = run.errors.find((x) => x.step === 'export');
    assert.ok(err);
    assert.equal(err.code, 'CLOUD_REJECTED');
    assert.match(err.object ?? '', /uid=u900/);
    const users = await cloud.all('Users');
    assert.ok(users.some((u) => u.userName === 'u901@example.test'));
    assert.ok(!users.some((u) => u.externalId === uuid(900)));
    people.pop();
    people.pop();
    write();
    await cycle();
  });

  test('a create whose response was lost is adopted by externalId, not duplicated', async () => {
    // Simulates a crash between the cloud's 201 and the engine recording it.
    const row = ctx.db.prepare("SELECT mv_id FROM export_objects WHERE object_type = 'user' LIMIT 1").get() as { mv_id: number };
    ctx.db.prepare('DELETE FROM export_objects WHERE mv_id = ?').run(row.mv_id);
    ctx.db.prepare('UPDATE mv_objects SET pending_export = 1 WHERE id = ?').run(row.mv_id);
    const count = (await cloud.all('Users')).length;
    const run = await cycle();
    assert.equal(run.status, 'success', JSON.stringify(run.errors));
    assert.equal((await cloud.all('Users')).length, count);
  });

  test('the deletion threshold stops a mass delete until --allow-deletes', async () => {
    const saved = people.splice(0, 10);
    write();
    const stopped = await cycle();
    assert.equal(stopped.status, 'failed');
    assert.equal(stopped.error?.code, 'DELETION_THRESHOLD_EXCEEDED');
    assert.equal(exportStep(stopped).deletes, 0);
    const count = (await cloud.all('Users')).length;
    const allowed = await cycle({ allowDeletes: true });
    assert.equal(allowed.status, 'success', JSON.stringify(allowed.errors));
    assert.equal(exportStep(allowed).deletes, 10);
    assert.equal((await cloud.all('Users')).length, count - 10);
    people.unshift(...saved);
    write();
    const back = await cycle();
    assert.equal(exportStep(back).adds, 10);
  });
});

describe('preview and staging mode', () => {
  let lab: EngineLab;
  let cloud: TestCloud;
  let ldifFile: string;
  let ctx: EngineContext;
  const people: Person[] = Array.from({ length: 12 }, (_, i) => ({ uid: `p${i + 1}`, ou: 'eng', title: 'Staff' }));
  const groups = () => [{ cn: 'all', id: 9, members: people.map(userDn) }];
  const config = (stagingMode: boolean) => lab.writeConfig({ sync: { stagingMode } });
  const reopen = () => {
    ctx = lab.reopen();
  };

  before(async () => {
    lab = await startEngineLab({ prefix: 'idsync-preview-', connectors: [ldifConnector()], sync: { stagingMode: false }, files: { 'source.ldif': ldif(people, groups()) } });
    ({ cloud, ctx } = lab);
    ldifFile = lab.path('source.ldif');
    assert.equal((await runCycle(ctx)).status, 'success');
  });

  after(() => lab?.close());

  test('--preview shows adds, attribute-level updates and deletes, writes nothing, and the next real cycle exports exactly that', async () => {
    people[0]!.title = 'Principal';
    const removed = people.splice(1, 1)[0]!;
    people.push({ uid: 'p99', ou: 'eng' });
    writeFileSync(ldifFile, ldif(people, groups()));
    const versions = new Map((await cloud.all('Users')).map((u) => [u.id, u.meta.version]));

    const preview = await runCycle(ctx, { preview: true });
    assert.equal(preview.status, 'success', JSON.stringify(preview.errors));
    const plan = preview.plan!;
    const ops = plan.map((p) => `${p.op} ${p.objectType} ${p.object}`).sort();
    assert.deepEqual(ops, [
      `add user uid=p99,ou=eng,${BASE}`,
      `delete user ${userDn(removed)}`,
      `update group cn=all,ou=groups,${BASE}`,
      `update user uid=p1,ou=eng,${BASE}`,
    ]);
    const titleChange = plan.find((p) => p.object.startsWith('uid=p1,'))!.changes;
    assert.deepEqual(titleChange, [{ attribute: 'title', before: 'Staff', after: 'Principal' }]);
    // nothing was written to the cloud
    const now = await cloud.all('Users');
    assert.equal(now.length, 12);
    for (const u of now) assert.equal(u.meta.version, versions.get(u.id));

    const real = await runCycle(ctx);
    const e = real.steps.find((s) => s.step === 'export')!;
    const counts = (op: string) => plan.filter((p) => p.op === op).length;
    assert.deepEqual([e.adds, e.updates, e.deletes], [counts('add'), counts('update'), counts('delete')]);
  });

  test('staging mode imports and syncs but never exports; switching it off exports what is pending', async () => {
    config(true);
    reopen();
    people[2]!.title = 'Staged';
    writeFileSync(ldifFile, ldif(people, groups()));
    const staged = await runCycle(ctx);
    assert.equal(staged.status, 'success');
    const exp = staged.steps.find((s) => s.step === 'export')!;
    assert.equal(exp.profile, 'staging');
    assert.equal(staged.plan!.length, 1);
    const staged3 = `${people[2]!.uid}@example.test`;
    assert.notEqual((await cloud.all('Users')).find((u) => u.userName === staged3).title, 'Staged');

    config(false);
    reopen();
    const live = await runCycle(ctx);
    assert.equal(live.steps.find((s) => s.step === 'export')!.updates, 1);
    assert.equal((await cloud.all('Users')).find((u) => u.userName === staged3).title, 'Staged');
  });

  test('a percentage deletion threshold counts against the exported objects', async () => {
    writeFileSync(lab.configFile, readFileSync(lab.configFile, 'utf8').replace('stagingMode: false', 'stagingMode: false\n  deletionThreshold: "10%"'));
    reopen();
    const removed = people.splice(0, 3); // 3 of 13 exported objects > 10%
    writeFileSync(ldifFile, ldif(people, groups()));
    const stopped = await runCycle(ctx);
    assert.equal(stopped.error?.code, 'DELETION_THRESHOLD_EXCEEDED');
    assert.match(stopped.error!.message, /10% = 1 objects/);
    people.unshift(...removed);
    writeFileSync(ldifFile, ldif(people, groups()));
    const restored = await runCycle(ctx);
    assert.equal(restored.status, 'success');
    assert.equal(restored.steps.find((s) => s.step === 'export')!.deletes, 0);
  });
});

describe('sync --object: one object through every step', () => {
  let lab: EngineLab;
  let cloud: TestCloud;
  let ldifFile: string;
  let ctx: EngineContext;
  const people: Person[] = [
    { uid: 'o1', ou: 'eng', title: 'Staff' },
    { uid: 'o2', ou: 'eng', title: 'Staff' },
  ];

  before(async () => {
    lab = await startEngineLab({ prefix: 'idsync-object-', connectors: [ldifConnector()], files: { 'source.ldif': ldif(people, []) } });
    ({ cloud, ctx } = lab);
    ldifFile = lab.path('source.ldif');
  });

  after(() => lab?.close());

  test('a new object is added, projected and exported; only that object', async () => {
    const t = await syncOneObject(ctx, `UID=o1, ou=eng,${BASE}`);
    assert.equal(t.import.result, 'added');
    assert.equal(t.import.connector, 'hr');
    assert.equal(t.sync.result, 'projected');
    assert.equal(t.export.result, 'added');
    assert.ok(t.export.cloudId);
    const users = await cloud.all('Users');
    assert.deepEqual(users.map((u) => u.userName), ['o1@example.test'], 'o2 was not exported');
  });

  test('a changed object shows the attribute change at every step', async () => {
    people[0]!.title = 'Boss';
    writeFileSync(ldifFile, ldif(people, []));
    const t = await syncOneObject(ctx, `uid=o1,ou=eng,${BASE}`);
    assert.equal(t.import.result, 'updated');
    assert.deepEqual(t.import.changes, [{ attribute: 'title', before: ['Staff'], after: ['Boss'] }]);
    assert.equal(t.sync.result, 'updated');
    assert.deepEqual(t.sync.changes, [{ attribute: 'title', before: 'Staff', after: 'Boss' }]);
    assert.equal(t.export.result, 'updated');
    assert.deepEqual(t.export.changes, [{ attribute: 'title', before: 'Staff', after: 'Boss' }]);
  });

  test('an unchanged object is unchanged everywhere; a removed one is deleted from the cloud', async () => {
    const same = await syncOneObject(ctx, `uid=o1,ou=eng,${BASE}`);
    assert.deepEqual([same.import.result, same.sync.result, same.export.result], ['unchanged', 'unchanged', 'unchanged']);
    writeFileSync(ldifFile, ldif([people[1]!], []));
    const gone = await syncOneObject(ctx, `uid=o1,ou=eng,${BASE}`);
    assert.deepEqual([gone.import.result, gone.sync.result, gone.export.result], ['deleted', 'disconnected', 'deleted']);
    assert.equal((await cloud.all('Users')).length, 0);
  });
});

describe('sync.deletionAction: disable', () => {
  let lab: EngineLab;
  let cloud: TestCloud;
  let ldifFile: string;
  let ctx: EngineContext;
  const people: Person[] = [
    { uid: 'x1', ou: 'eng' },
    { uid: 'x2', ou: 'eng' },
  ];

  before(async () => {
    lab = await startEngineLab({ prefix: 'idsync-disable-', connectors: [ldifConnector()], sync: { deletionAction: 'disable' }, files: { 'source.ldif': ldif(people, []) } });
    ({ cloud, ctx } = lab);
    ldifFile = lab.path('source.ldif');
    assert.equal((await runCycle(ctx)).status, 'success');
  });

  after(() => lab?.close());

  test('a user removed from the source is disabled in the cloud, not deleted; back at the source, the same cloud user is enabled again', async () => {
    const before = (await cloud.all('Users')).find((u) => u.userName === 'x2@example.test');
    writeFileSync(ldifFile, ldif([people[0]!], []));
    const preview = await runCycle(ctx, { preview: true });
    assert.deepEqual(preview.plan!.map((p) => p.op), ['disable']);
    const run = await runCycle(ctx);
    assert.equal(run.steps.find((s) => s.step === 'export')!.deletes, 1);
    const disabled = (await cloud.all('Users')).find((u) => u.userName === 'x2@example.test');
    assert.equal(disabled.id, before.id);
    assert.equal(disabled.active, false);

    writeFileSync(ldifFile, ldif(people, []));
    const back = await runCycle(ctx);
    assert.equal(back.status, 'success', JSON.stringify(back.errors));
    const enabled = (await cloud.all('Users')).find((u) => u.userName === 'x2@example.test');
    assert.equal(enabled.id, before.id, 'the same cloud user');
    assert.equal(enabled.active, true);
  });
});
