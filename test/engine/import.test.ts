/**
 * A full import stages a heavy page in parts (src/engine/import.ts byWeight, STAGE_WEIGHT): a page
 * of groups with thousands of members is several transactions, each with its sync, and the event
 * loop is free between them; the connector space it leaves is the one the page staged whole
 * leaves. The cut itself is checked on seeded random pages.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { allMigrations } from '../../src/app/migrations.js';
import { createSourceConnector } from '../../src/connectors/registry.js';
import type { SourceObject } from '../../src/connectors/types.js';
import { ImportStager } from '../../src/engine/connector-space.js';
import { byWeight, importConnector, STAGE_WEIGHT } from '../../src/engine/import.js';
import { RunLog } from '../../src/engine/runs.js';
import { openDatabase, type Database } from '../../src/store/database.js';
import { ldifConnector, startEngineLab } from '../helpers/engine-lab.js';
import { prng } from '../helpers/prng.js';

const SEED = Number(process.env.IDSYNC_TEST_SEED ?? 20261207);

test('byWeight cuts a page in order into parts of at most STAGE_WEIGHT rows (a heavier object alone)', () => {
  const rand = prng(SEED);
  for (let round = 0; round < 200; round++) {
    const page = Array.from({ length: Math.floor(rand() * 400) }, (_, i) => ({
      i,
      members: Array.from({ length: rand() < 0.8 ? 0 : Math.floor(rand() * (rand() < 0.1 ? 3 * STAGE_WEIGHT : 500)) }),
    }));
    const parts = byWeight(page);
    assert.deepEqual(parts.flat(), page, 'every object once, in order');
    const weight = (part: typeof page) => part.reduce((n, p) => n + 1 + p.members.length, 0);
    parts.forEach((part, k) => {
      assert.ok(part.length > 0);
      if (part.length > 1) assert.ok(weight(part) <= STAGE_WEIGHT, `part ${k} of round ${round}: ${weight(part)}`);
      const next = parts[k + 1]?.[0];
      if (next) assert.ok(weight(part) + 1 + next.members.length > STAGE_WEIGHT, 'a part is as large as it can be');
    });
  }
});

const dir = mkdtempSync(path.join(tmpdir(), 'idsync-import-parts-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const B = 'dc=lab,dc=test';
const USERS = 400;
const GROUPS = 60; // 60 groups of 400 members: 24,060 rows, about 2.4 × STAGE_WEIGHT in one LDIF page

function directory(): string {
  const out = ['version: 1', ''];
  for (let i = 0; i < USERS; i++) out.push(`dn: uid=u${i},ou=people,${B}`, 'objectClass: inetOrgPerson', `uid: u${i}`, `cn: U ${i}`, `sn: U${i}`, `entryUUID: 00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, '');
  for (let g = 0; g < GROUPS; g++) {
    out.push(`dn: cn=g${g},ou=groups,${B}`, 'objectClass: groupOfNames', `cn: g${g}`, `entryUUID: 00000000-0000-4000-9000-${String(g).padStart(12, '0')}`);
    for (let i = 0; i < USERS; i++) out.push(`member: uid=u${(i * 7 + g) % USERS},ou=people,${B}`);
    out.push('');
  }
  return out.join('\n');
}

function connectorSpace(db: Database): unknown {
  return {
    objects: db.prepare('SELECT anchor, object_type, dn, dn_norm, attrs, hash, pending FROM cs_objects ORDER BY anchor').all(),
    members: db.prepare('SELECT group_anchor, member_dn, member_anchor FROM cs_members ORDER BY group_anchor, member_dn').all(),
  };
}

test('a page of large groups is staged in parts, each in its own transaction, to the same connector space as the page whole', async () => {
  const lab = await startEngineLab({ connectors: [ldifConnector()], files: { 'source.ldif': directory() } });
  try {
    const cfg = lab.loaded.config.connectors[0]!;
    const { db, events } = lab.ctx;
    const runs = new RunLog(db);
    const step = runs.step(runs.begin('test'), 'hr', 'import');
    let transactions = 0;
    let inTransaction = 0;
    const connector = createSourceConnector(lab.loaded, cfg, async () => undefined);
    try {
      await importConnector(db, connector, step, {
        full: true,
        events,
        onStaged: () => {
          transactions++;
          if (db.inTransaction) inTransaction++;
        },
      });
    } finally {
      await connector.close();
    }
    // One page of 460 objects (the LDIF connector's pages are 1,000): users, then the groups in parts.
    assert.ok(transactions >= 3, `the page was staged in ${transactions} transactions`);
    assert.equal(inTransaction, transactions, "each part's sync runs inside its part's transaction");
    assert.equal(step.counts.adds, USERS + GROUPS);

    // The same objects staged as one page, into another database.
    const whole = openDatabase(path.join(dir, 'whole.db'), allMigrations);
    try {
      const objects: SourceObject[] = [];
      const again = createSourceConnector(lab.loaded, cfg, async () => undefined);
      for await (const page of again.fullImport()) objects.push(...page);
      await again.close();
      const stager = new ImportStager(whole, 'hr', 'ldif');
      stager.stagePage(objects, { adds: 0, updates: 0, deletes: 0, unchanged: 0, errors: 0 });
      assert.deepEqual(connectorSpace(db), connectorSpace(whole));
      assert.equal((connectorSpace(whole) as { members: unknown[] }).members.length, GROUPS * USERS);
    } finally {
      whole.close();
    }
  } finally {
    await lab.close();
  }
});
