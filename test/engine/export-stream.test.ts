/**
 * The users' export over SCIM Bulk is one stream of batches across its chunks (engine/export.ts
 * writeStream): the next chunk is read and prepared while the last batches of the one before are
 * still out, so the cloud is never left without work at a chunk's end. The target is the real SCIM
 * target, wrapped only to count the batches in flight and to hold each one a little (a cloud
 * slower than the engine, which is when the barrier showed); the source, the engine's store and
 * the cloud over HTTP are real.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { ScimTarget } from '../../src/connectors/cloud/target.js';
import type { TargetWrite } from '../../src/connectors/types.js';
import { IdsyncError } from '../../src/core/errors.js';
import { EXPORT_CHUNK, Exporter } from '../../src/engine/export.js';
import { RunLog } from '../../src/engine/runs.js';
import { ldifConnector, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { peopleLdif, scimTargetWith, stagedForExport } from '../helpers/export-target.js';

const USERS = EXPORT_CHUNK + 1000;
const BULK = 100;
const CONCURRENCY = 4;

let lab: EngineLab;
before(async () => {
  lab = await startEngineLab({ connectors: [ldifConnector()], files: { 'source.ldif': peopleLdif(USERS) } });
});
after(() => lab?.close());

/** The real SCIM target; each batch is held `holdMs` and counted while it is out. */
function countingTarget(scim: ScimTarget, holdMs: number, failAt?: number) {
  const seen: { inFlight: number }[] = [];
  let inFlight = 0;
  const target = scimTargetWith(scim, {
    writeBatch: async (writes: TargetWrite[]) => {
      seen.push({ inFlight });
      if (seen.length === failAt) throw new IdsyncError('CLOUD_SERVER_ERROR', 'the cloud directory failed (test)');
      inFlight++;
      try {
        await sleep(holdMs);
        return await scim.writeBatch(writes);
      } finally {
        inFlight--;
      }
    },
  });
  return { target, seen };
}

const pendingUsers = (): number => lab.ctx.db.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM mv_objects WHERE object_type = 'user' AND pending_export = 1").get()!.n;

test('the first batch of the next chunk goes out while the last batches of the chunk before are still in flight; a failure stops the stream with its answers recorded', async () => {
  // Import and sync only (a preview exports nothing), then the export by hand.
  const { db, cloudClient, scim } = await stagedForExport(lab);
  assert.equal(pendingUsers(), USERS);
  const runs = new RunLog(db);
  const runId = runs.begin('test');
  const options = { deletionThreshold: 500, allowDeletes: false, concurrency: CONCURRENCY, bulkSize: BULK };

  // A failure: nothing is taken after it, and what the cloud answered before it (and the batches
  // out beside it) is recorded.
  const failAt = CONCURRENCY + 2;
  const failing = countingTarget(scim, 5, failAt);
  await assert.rejects(new Exporter(db, failing.target, options).run(runs.step(runId, 'cloud', 'export')), /failed \(test\)/);
  assert.ok(failing.seen.length <= failAt + CONCURRENCY - 1, `no batch is taken after the failure (${failing.seen.length} sent)`);
  const answered = (await lab.cloud.all('Users')).length;
  assert.ok(answered >= BULK, `the batches before the failure are in the cloud (${answered})`);
  assert.equal(pendingUsers(), USERS - answered, 'every answer the cloud gave is recorded; nothing else is');

  // The rest, as one stream.
  const run = countingTarget(scim, 30);
  const step = runs.step(runId, 'cloud', 'export');
  await new Exporter(db, run.target, options).run(step);
  assert.equal(step.counts.adds, USERS - answered, 'only what was not recorded is sent');
  assert.equal(pendingUsers(), 0);
  const inCloud = await lab.cloud.all<{ externalId: string }>('Users');
  assert.equal(inCloud.length, USERS);
  assert.equal(new Set(inCloud.map((u) => u.externalId)).size, USERS, 'nothing twice in the cloud');

  // This export's own chunks: the rows left start a chunk, and the next one begins EXPORT_CHUNK rows later.
  assert.ok(USERS - answered > EXPORT_CHUNK, 'what is left spans two chunks');
  const boundary = EXPORT_CHUNK / BULK;
  assert.ok(run.seen.length > boundary, `the export spans two chunks (${run.seen.length} batches)`);
  assert.equal(run.seen[0]!.inFlight, 0);
  assert.ok(run.seen[boundary]!.inFlight >= 1, `the next chunk's first batch went out beside the last ones of the chunk before (in flight then: ${run.seen[boundary]!.inFlight})`);
  const idle = run.seen.slice(1).filter((s) => s.inFlight === 0).length;
  assert.equal(idle, 0, `after the first, no batch found the pipeline empty (${idle} did)`);
  await cloudClient.close();
});
