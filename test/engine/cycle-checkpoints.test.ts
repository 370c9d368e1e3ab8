/**
 * A cycle's WAL checkpoints move off the event loop once it has imported or exported
 * BACKGROUND_CHECKPOINTS_FROM objects (engine/cycle.ts, store/checkpoints.ts): the connection's
 * automatic checkpoint is raised from then on, and is its own again when the cycle ends; a cycle
 * of a few changes never starts the worker. Real LDIF source, real cloud over HTTP, SQLite on disk
 * (the store is SQLite whatever IDSYNC_TEST_STORE says: PostgreSQL has no WAL to checkpoint).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { BACKGROUND_CHECKPOINTS_FROM, runCycle } from '../../src/engine/cycle.js';
import { BURST_AUTOCHECKPOINT_PAGES } from '../../src/store/checkpoints.js';
import { ldifConnector, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { peopleLdif } from '../helpers/export-target.js';

const USERS = BACKGROUND_CHECKPOINTS_FROM + 500;

let lab: EngineLab;
let small: EngineLab;
before(async () => {
  lab = await startEngineLab({ connectors: [ldifConnector()], files: { 'source.ldif': peopleLdif(USERS) }, store: 'sqlite' });
  small = await startEngineLab({ connectors: [ldifConnector()], files: { 'source.ldif': peopleLdif(50) }, store: 'sqlite' });
});
after(async () => {
  await small?.close();
  await lab?.close();
});

/** The connection's automatic checkpoint at every progress report of a cycle: [step, done, pages]. */
async function cycleWatchingSetting(on: EngineLab): Promise<{ seen: [string, number, number][]; status: string }> {
  const seen: [string, number, number][] = [];
  const run = await runCycle(on.ctx, { onProgress: (p) => seen.push([p.step, p.done, Number(on.ctx.db.pragma('wal_autocheckpoint', { simple: true }))]) });
  return { seen, status: run.status };
}

test('a first cycle of more objects than the threshold checkpoints on a worker from there on; its connection has its own setting after it', async () => {
  const own = Number(lab.ctx.db.pragma('wal_autocheckpoint', { simple: true }));
  assert.equal(own, 1000);
  const { seen, status } = await cycleWatchingSetting(lab);
  assert.equal(status, 'success');
  assert.equal((await lab.cloud.all('Users')).length, USERS);
  const imported = seen.filter(([step]) => step === 'import');
  const exported = seen.filter(([step]) => step === 'export');
  assert.ok(imported.some(([, done]) => done < BACKGROUND_CHECKPOINTS_FROM), 'progress was reported before the threshold');
  // The report that first crosses the threshold starts the worker (before it is passed on): from
  // there on every report sees it running, before it the connection's own setting.
  const crossed = seen.findIndex(([, done]) => done >= BACKGROUND_CHECKPOINTS_FROM);
  assert.ok(crossed > 0, 'the threshold was crossed');
  seen.forEach(([step, done, pages], i) => assert.equal(pages, i >= crossed ? BURST_AUTOCHECKPOINT_PAGES : own, `${step} ${done} (report ${i})`));
  assert.ok(exported.some(([, , pages]) => pages === BURST_AUTOCHECKPOINT_PAGES), 'the export ran with the worker');
  assert.equal(Number(lab.ctx.db.pragma('wal_autocheckpoint', { simple: true })), own, 'the own setting after the cycle');
  assert.equal(lab.ctx.db.prepare('PRAGMA integrity_check').pluck().get(), 'ok');
});

test('a cycle of fewer objects never raises it', async () => {
  const { seen, status } = await cycleWatchingSetting(small);
  assert.equal(status, 'success');
  assert.ok(seen.length > 0, 'the cycle reported progress');
  assert.ok(
    seen.every(([, , pages]) => pages === 1000),
    JSON.stringify(seen.filter(([, , p]) => p !== 1000)),
  );
});
