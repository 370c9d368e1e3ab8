/**
 * A cloud without a Bulk endpoint (the SCIM target answers writeBatch with undefined: a 404, 405
 * or 501 for /Bulk): the users' stream stops taking batches and the rest goes one write at a time,
 * `cloud.concurrency` in flight — not that many per batch for every batch left. Ours has Bulk, so
 * the target is the real SCIM target with its writeBatch answering "no Bulk here"; the single
 * writes are real, over HTTP, to the real cloud, from a real LDIF source through the engine's store.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { EXPORT_CHUNK, Exporter } from '../../src/engine/export.js';
import { RunLog } from '../../src/engine/runs.js';
import { ldifConnector, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { peopleLdif, scimTargetWith, stagedForExport } from '../helpers/export-target.js';

const USERS = EXPORT_CHUNK + 300;
const BULK = 100;
const CONCURRENCY = 4;

let lab: EngineLab;
before(async () => {
  lab = await startEngineLab({ connectors: [ldifConnector()], files: { 'source.ldif': peopleLdif(USERS) } });
});
after(() => lab?.close());

test('without a Bulk endpoint the users go one by one, cloud.concurrency at a time after the batches already taken', async () => {
  const { db, cloudClient, scim } = await stagedForExport(lab);
  let inFlight = 0;
  let crowded = 0;
  let batches = 0;
  const target = scimTargetWith(scim, {
    writeBatch: async () => {
      batches++;
      return undefined;
    },
    write: async (w) => {
      if (++inFlight > CONCURRENCY) crowded++;
      try {
        return await scim.write(w);
      } finally {
        inFlight--;
      }
    },
  });
  const runs = new RunLog(db);
  const step = runs.step(runs.begin('test'), 'cloud', 'export');
  await new Exporter(db, target, { deletionThreshold: 500, allowDeletes: false, concurrency: CONCURRENCY, bulkSize: BULK }).run(step);

  assert.equal(step.counts.adds, USERS);
  assert.equal(db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM mv_objects WHERE pending_export = 1').get()!.n, 0);
  const inCloud = await lab.cloud.all<{ externalId: string }>('Users');
  assert.equal(new Set(inCloud.map((u) => u.externalId)).size, USERS, 'every user once');
  assert.ok(batches <= CONCURRENCY, `no batch is taken once the cloud said it has no Bulk (${batches} were)`);
  // Only the batches taken before the answer may go out beside each other (each one by one, a
  // worker per batch); everything after is cloud.concurrency writes at a time.
  assert.ok(crowded <= CONCURRENCY * BULK, `${crowded} writes went out beside more than ${CONCURRENCY} others`);
  await cloudClient.close();
});
