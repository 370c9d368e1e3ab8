/**
 * A Bulk answer in which one operation failed on the server (a 5xx for it, the others ok) stops
 * the export, and the batch's other answers are still recorded: the next export sends only the
 * failed one, and nothing is twice in the cloud. The real cloud cannot fail one operation on
 * demand, so the target is the real SCIM target whose answer for one operation is replaced by a
 * 500 after the cloud carried it out (the worst case: the cloud has it, the engine does not know);
 * the rest is real: the LDIF source, the engine's SQLite, the cloud over HTTP.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TargetWrite } from '../../src/connectors/types.js';
import { Exporter } from '../../src/engine/export.js';
import { RunLog } from '../../src/engine/runs.js';
import { ldifConnector, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { peopleLdif, scimTargetWith, stagedForExport } from '../helpers/export-target.js';


let lab: EngineLab;
before(async () => {
  lab = await startEngineLab({ connectors: [ldifConnector()], files: { 'source.ldif': peopleLdif(6) } });
});
after(() => lab?.close());

test("one operation failing on the server stops the export with the batch's other answers recorded; the next export sends only it", async () => {
  const { db, cloudClient, scim } = await stagedForExport(lab);
  const target = scimTargetWith(scim, {
    writeBatch: async (writes: TargetWrite[]) => {
      const outcomes = await scim.writeBatch(writes);
      return outcomes?.map((o, i) => (i === 2 ? { kind: 'server-error' as const, status: 500, detail: 'internal error (test)' } : o));
    },
  });
  const runs = new RunLog(db);
  const runId = runs.begin('test');
  const options = { deletionThreshold: 500, allowDeletes: false, concurrency: 2, bulkSize: 10 };
  await assert.rejects(new Exporter(db, target, options).run(runs.step(runId, 'cloud', 'export')), (err: unknown) => {
    assert.equal((err as { code?: string }).code, 'CLOUD_SERVER_ERROR');
    assert.match((err as Error).message, /internal error \(test\)/);
    return true;
  });
  const users = () =>
    db.prepare<[], { pending_export: number; cloud_id: string | null }>("SELECT m.pending_export, e.cloud_id FROM mv_objects m LEFT JOIN export_objects e ON e.mv_id = m.id WHERE m.object_type = 'user' ORDER BY m.id").all();
  assert.deepEqual(
    users().map((u) => [u.pending_export, u.cloud_id !== null]),
    [[0, true], [0, true], [1, false], [0, true], [0, true], [0, true]],
    'the answers beside the failed operation are recorded; it stays pending',
  );

  const step = runs.step(runId, 'cloud', 'export');
  await new Exporter(db, scim, options).run(step);
  assert.equal(step.counts.adds + step.counts.updates, 1, 'only the failed operation is sent again (its create, carried out already, is adopted by externalId)');
  assert.ok(users().every((u) => u.pending_export === 0 && u.cloud_id !== null));
  const inCloud = await lab.cloud.all<{ externalId: string }>('Users');
  assert.equal(inCloud.length, 6);
  assert.equal(new Set(inCloud.map((u) => u.externalId)).size, 6, 'nothing twice in the cloud');
  await cloudClient.close();
});
