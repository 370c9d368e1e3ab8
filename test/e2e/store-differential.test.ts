/**
 * SQLite and PostgreSQL stores, differentially: the same seeded random sequence of directory
 * operations (test/helpers/delta-fuzz.ts: adds, deletes, re-creates, renames, moves in and out of
 * scope, OU moves, memberships) and the same delta cycles run by two engines on one directory, one
 * on each store, each exporting to a cloud of its own. After every cycle the two clouds (read over
 * SCIM) and the two stores' contents (connector space, metaverse, memberships, export state, run
 * counts: test/helpers/store.ts storeContents) must be equal.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runDeltaFuzz, type FuzzResult } from '../helpers/delta-fuzz.js';
import { skipUnless } from '../helpers/integration.js';
import { skipUnlessPostgres } from '../helpers/postgres.js';
import { useSambaDC, type SambaDC } from '../helpers/samba.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const report = (r: FuzzResult) => `seed ${r.seed} (${r.kind}): SQLite and PostgreSQL differ after ${r.steps} steps:\n${r.ops.slice(-30).join('\n')}\n${r.differences.join('\n')}`;

const SEEDS = (process.env.IDSYNC_STORE_DIFF_SEEDS ?? '3,11').split(',').map(Number);

describe('SQLite vs PostgreSQL store: OpenLDAP with the accesslog', { skip: skipUnless('slapd') || skipUnlessPostgres() }, () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd({ accesslog: true, baseOus: false });
  });
  after(async () => {
    await slapd?.stop();
  });
  for (const seed of SEEDS) {
    test(`seed ${seed}, 60 steps: both stores and both clouds equal after every cycle`, { timeout: 600_000 }, async () => {
      const r = await runDeltaFuzz({ kind: 'ldap', seed, steps: 60, slapd, storeTwin: true });
      assert.equal(r.steps, 60, report(r));
      assert.ok(r.cycles >= 15);
      assert.deepEqual(r.differences, [], report(r));
    });
  }
});

describe('SQLite vs PostgreSQL store: Samba AD', { skip: skipUnless('samba') || skipUnlessPostgres() }, () => {
  let dc: SambaDC;
  before(async () => {
    dc = await useSambaDC();
  });
  after(async () => {
    await dc?.stop();
  });
  test(`seed ${SEEDS[0]}, 40 steps: both stores and both clouds equal after every cycle`, { timeout: 600_000 }, async () => {
    const r = await runDeltaFuzz({ kind: 'ad', seed: SEEDS[0]!, steps: 40, dc, storeTwin: true });
    assert.equal(r.steps, 40, report(r));
    assert.deepEqual(r.differences, [], report(r));
  });
});
