/**
 * The overlapped cycle's export settles only the version it sent (engine/pipeline.ts): when the
 * sync changes an object while that object's write is in flight, the object stays pending and the
 * change still goes out. The moment "while in flight" cannot be produced on demand through the
 * real cycle, so a wrapper around the real SCIM target runs the sync's write (the same UPDATE the
 * sync makes) right after the cloud answered and before the export records the answer; everything
 * else is real: the LDIF source, the engine's SQLite, the cloud directory over HTTP.
 *
 * And the import runs at most EXPORT_LEAD users ahead of what the cloud answered (room()), so the
 * main thread's time goes to the export too instead of leaving the users for after the import.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ScimTarget } from '../../src/connectors/cloud/target.js';
import type { TargetConnector, TargetOutcome, TargetWrite } from '../../src/connectors/types.js';
import { createCloudClient } from '../../src/connectors/registry.js';
import { runCycle } from '../../src/engine/cycle.js';
import { Exporter } from '../../src/engine/export.js';
import { EXPORT_LEAD } from '../../src/engine/pipeline.js';
import { RunLog } from '../../src/engine/runs.js';
import { startTestCloud } from '../helpers/cloud.js';
import { ldifConnector, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { startSlowProxy } from '../helpers/slow-proxy.js';

const BASE = 'dc=example,dc=test';
const people = (title: (i: number) => string) =>
  Array.from({ length: 6 }, (_, i) =>
    [`dn: uid=p${i},ou=eng,${BASE}`, 'objectClass: inetOrgPerson', `uid: p${i}`, `cn: P ${i}`, `sn: P${i}`, `mail: p${i}@example.test`, `title: ${title(i)}`, `entryUUID: 00000000-0000-4000-8000-00000000000${i}`, ''].join('\n'),
  ).join('\n');

let lab: EngineLab;
before(async () => {
  lab = await startEngineLab({ connectors: [ldifConnector()], files: { 'source.ldif': `version: 1\n\n${people(() => 'Staff')}` } });
});
after(() => lab?.close());

test('an object the sync changed while its write was in flight stays pending, and its change goes out', async () => {
  const first = await runCycle(lab.ctx);
  assert.equal(first.status, 'success', JSON.stringify(first.errors));
  // A change of every title is synced (pending), then exported through a target that lets the
  // "sync" change p3 again after the cloud answered for the version it was sent.
  lab.writeFile('source.ldif', `version: 1\n\n${people(() => 'Lead')}`);
  const { db } = lab.ctx;
  const p3 = () => db.prepare<[], { id: number; attrs: string; pending_export: number }>("SELECT id, attrs, pending_export FROM mv_objects WHERE source_anchor LIKE '%0003'").get()!;
  const cloudClient = createCloudClient(lab.loaded, lab.ctx.credentials);
  const scim = new ScimTarget(cloudClient);
  let changed = false;
  const meanwhile = () => {
    if (changed) return;
    changed = true;
    const row = p3();
    const attrs = JSON.parse(row.attrs) as Record<string, unknown>;
    // What Synchronizer.applyChanges writes for a changed object.
    db.prepare('UPDATE mv_objects SET attrs = ?, deleted = 0, pending_export = 1, updated_at = ? WHERE id = ?').run(JSON.stringify({ ...attrs, title: 'Chief' }), new Date().toISOString(), row.id);
  };
  const target: TargetConnector = {
    name: scim.name,
    writeBatch: async (writes: TargetWrite[]) => {
      const r = await scim.writeBatch(writes);
      meanwhile();
      return r;
    },
    write: async (w: TargetWrite): Promise<TargetOutcome> => {
      const r = await scim.write(w);
      meanwhile();
      return r;
    },
    remove: (t, id, how) => scim.remove(t, id, how),
    find: (t, a, v) => scim.find(t, a, v),
  };
  // The cycle's import and sync, without its export (staging mode would skip it too; the export
  // is run by hand below with the wrapped target).
  const second = await runCycle(lab.ctx, { preview: true });
  assert.equal(second.status, 'success', JSON.stringify(second.errors));
  const runs = new RunLog(db);
  const runId = runs.begin('test');
  const exporter = new Exporter(db, target, { deletionThreshold: 500, allowDeletes: false, concurrency: 2, bulkSize: 200 });
  await exporter.run(runs.step(runId, 'cloud', 'export'));
  assert.ok(changed, 'the sync changed p3 while its write was in flight');
  assert.equal(p3().pending_export, 1, 'p3 stays pending: the cloud has the version before the change');
  const inCloud = async () => (await lab.cloud.all<{ userName: string; title?: string }>('Users')).find((u) => u.userName === 'p3@example.test')?.title;
  assert.equal(await inCloud(), 'Lead');

  // The next pass sends the change.
  const next = new Exporter(db, scim, { deletionThreshold: 500, allowDeletes: false, concurrency: 2, bulkSize: 200 });
  await next.run(runs.step(runId, 'cloud', 'export'));
  assert.equal(p3().pending_export, 0);
  assert.equal(await inCloud(), 'Chief');
  await cloudClient.close();
});

test('the overlapped import runs at most EXPORT_LEAD users ahead of the cloud, and everything still goes out', async () => {
  const users = EXPORT_LEAD + 3000;
  const entries = Array.from({ length: users }, (_, i) =>
    [`dn: uid=l${i},ou=eng,${BASE}`, 'objectClass: inetOrgPerson', `uid: l${i}`, `cn: L ${i}`, `sn: L${i}`, `mail: l${i}@example.test`, `entryUUID: 10000000-0000-4000-8000-${String(i).padStart(12, '0')}`, ''].join('\n'),
  );
  // A cloud slower than the engine (each Bulk request held 150 ms on its way): unbounded, the import would run to its end first.
  const cloud = await startTestCloud();
  const proxy = await startSlowProxy(cloud.url);
  proxy.bulkDelayMs = 150;
  const big = await startEngineLab({ connectors: [ldifConnector()], cloud, cloudUrl: proxy.url, files: { 'source.ldif': `version: 1\n\n${entries.join('\n')}` } });
  try {
    let imported = 0;
    let exported = 0;
    let lead = 0;
    const run = await runCycle(big.ctx, {
      onProgress: (p) => {
        if (p.step === 'export') exported = p.done;
        if (p.step !== 'import') return;
        imported = p.done;
        lead = Math.max(lead, imported - exported);
      },
    });
    assert.equal(run.status, 'success', JSON.stringify(run.errors));
    assert.equal(imported, users);
    // A page (1,000 objects here) is staged whole once there is room for it.
    assert.ok(lead <= EXPORT_LEAD + 1000, `the import ran ${lead} objects ahead of the cloud`);
    assert.equal((await cloud.all('Users')).length, users);
  } finally {
    await big.close();
    await proxy.close();
    await cloud.close();
  }
});
