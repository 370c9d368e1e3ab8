/**
 * The export records a chunk's Bulk answers together, after the chunk (engine/export.ts flush):
 * when a batch of the chunk fails, what the cloud answered for the other batches is still
 * recorded, and the next export sends only what is left, with nothing twice in the cloud. The
 * failing batch is a wrapper around the real SCIM target (a server error on demand cannot be had
 * from the real cloud); the rest is real: the LDIF source, the engine's SQLite, the cloud over HTTP.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TargetWrite } from '../../src/connectors/types.js';
import { IdsyncError } from '../../src/core/errors.js';
import { Exporter } from '../../src/engine/export.js';
import { RunLog } from '../../src/engine/runs.js';
import { ldifConnector, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { peopleLdif, scimTargetWith, stagedForExport } from '../helpers/export-target.js';


let lab: EngineLab;
before(async () => {
  lab = await startEngineLab({ connectors: [ldifConnector()], files: { 'source.ldif': peopleLdif(7) } });
});
after(() => lab?.close());

test('a failed batch leaves the answers of the chunk\'s other batches recorded; the next export sends the rest once', async () => {
  // Import and sync only (a preview exports nothing), then the export by hand.
  const { db, cloudClient, scim } = await stagedForExport(lab);
  let batches = 0;
  const target = scimTargetWith(scim, {
    writeBatch: async (writes: TargetWrite[]) => {
      // Batches of 2, one at a time: the third fails as a cloud failing mid-export does.
      if (++batches === 3) throw new IdsyncError('CLOUD_SERVER_ERROR', 'the cloud directory failed (test)');
      return scim.writeBatch(writes);
    },
  });
  const runs = new RunLog(db);
  const runId = runs.begin('test');
  const failing = new Exporter(db, target, { deletionThreshold: 500, allowDeletes: false, concurrency: 1, bulkSize: 2 });
  await assert.rejects(failing.run(runs.step(runId, 'cloud', 'export')), /failed \(test\)/);

  const users = () => db.prepare<[], { pending_export: number; cloud_id: string | null }>("SELECT m.pending_export, e.cloud_id FROM mv_objects m LEFT JOIN export_objects e ON e.mv_id = m.id WHERE m.object_type = 'user' ORDER BY m.id").all();
  assert.deepEqual(
    users().map((u) => [u.pending_export, u.cloud_id !== null]),
    [[0, true], [0, true], [0, true], [0, true], [1, false], [1, false], [1, false]],
    'the two answered batches are recorded, the failed one and the one after it are still pending',
  );
  assert.equal((await lab.cloud.all('Users')).length, 4);

  const step = runs.step(runId, 'cloud', 'export');
  await new Exporter(db, scim, { deletionThreshold: 500, allowDeletes: false, concurrency: 1, bulkSize: 2 }).run(step);
  assert.equal(step.counts.adds, 3, 'only what was not recorded is sent again');
  assert.ok(users().every((u) => u.pending_export === 0 && u.cloud_id !== null));
  const inCloud = await lab.cloud.all<{ externalId: string }>('Users');
  assert.equal(inCloud.length, 7);
  assert.equal(new Set(inCloud.map((u) => u.externalId)).size, 7, 'nothing twice in the cloud');
  await cloudClient.close();
});
