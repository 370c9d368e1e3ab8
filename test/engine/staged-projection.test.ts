/**
 * The overlapped first cycle projects new users as they are staged (ImportStager's `project`,
 * Synchronizer.projectStaged) instead of staging them pending and syncing them after: both ways
 * must leave the same engine state. On seeded random directories (IDSYNC_PROJECTION_SEEDS), the
 * same pages go through both into two databases on disk (each page's sync inside its transaction,
 * as the pipeline does), and every table the engine keeps is compared — connector space (rows,
 * pending changes, links), metaverse (attributes, flags), memberships, join keys — with metaverse
 * ids compared by their anchors (the two ways number them in another order), and the run counts.
 * The directories hold what the shortcut must step aside for: groups listed before and after
 * their members, nested groups, a member DN that names nobody, an anchor twice in one import (the
 * second is staged as an update of the first; a projection made for it is taken back), a metaverse tombstone of an earlier
 * object with a user's anchor (it is revived by the sync pass), and AD-style member anchors.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { allMigrations } from '../../src/app/migrations.js';
import type { SourceObject } from '../../src/connectors/types.js';
import { ImportStager } from '../../src/engine/connector-space.js';
import { RunLog, type StepHandle } from '../../src/engine/runs.js';
import { Synchronizer } from '../../src/engine/sync.js';
import { compileRules } from '../../src/rules/index.js';
import { openDatabase, type Database } from '../../src/store/database.js';
import { prng } from '../helpers/prng.js';

const SEEDS = (process.env.IDSYNC_PROJECTION_SEEDS ?? '1,2,3,4,5,6').split(',').map(Number);

function directory(seed: number, kind: 'ldap' | 'ad'): SourceObject[][] {
  const rnd = prng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const users: SourceObject[] = [];
  const n = 20 + Math.floor(rnd() * 60);
  for (let i = 0; i < n; i++) {
    const attributes: Record<string, string[]> = kind === 'ad' ? { samaccountname: [`u${i}`], cn: [`User ${i}`] } : { uid: [`u${i}`], cn: [`User ${i}`] };
    if (rnd() < 0.7) attributes.mail = [`u${i}@lab.test`];
    if (rnd() < 0.5) attributes.title = [pick(['Engineer', 'Chef', 'Zoë', ''])];
    if (kind === 'ad' && rnd() < 0.3) attributes.useraccountcontrol = ['514'];
    users.push({ anchor: `user-${seed}-${i}`, objectType: 'user', dn: `${kind === 'ad' ? 'CN' : 'uid'}=u${i},OU=People,DC=lab,DC=test`, attributes });
  }
  const groups: SourceObject[] = [];
  const g = 2 + Math.floor(rnd() * 6);
  for (let j = 0; j < g; j++) groups.push({ anchor: `group-${seed}-${j}`, objectType: 'group', dn: `CN=g${j},OU=Groups,DC=lab,DC=test`, attributes: { cn: [`g${j}`] } });
  for (const grp of groups) {
    const members = [...users, ...groups].filter((m) => m !== grp && rnd() < 0.3);
    if (rnd() < 0.3) members.push({ anchor: 'nobody', objectType: 'user', dn: 'uid=nobody,ou=people,dc=lab,dc=test', attributes: {} });
    if (kind === 'ad') grp.members = members.map((m) => ({ dn: m.dn, ...(m.anchor === 'nobody' ? {} : { anchor: m.anchor }) }));
    else grp.attributes.member = members.map((m) => (rnd() < 0.5 ? m.dn.toLowerCase() : m.dn));
  }
  const all = [...users, ...groups];
  // Shuffled (groups before and after their members), a few anchors twice (a changed copy).
  for (let i = all.length - 1; i > 0; i--) {
    const k = Math.floor(rnd() * (i + 1));
    [all[i], all[k]] = [all[k]!, all[i]!];
  }
  for (let d = 0; d < 3; d++) {
    const o = pick(users);
    all.splice(Math.floor(rnd() * all.length), 0, { ...o, attributes: { ...o.attributes, title: [`copy ${d}`] } });
  }
  const pages: SourceObject[][] = [];
  const size = 1 + Math.floor(rnd() * 15);
  for (let i = 0; i < all.length; i += size) pages.push(all.slice(i, i + size));
  return pages;
}

/** Stages and syncs the pages into a fresh database: with the projection at staging, or without. */
function run(dir: string, name: string, kind: 'ldap' | 'ad', pages: SourceObject[][], projected: boolean, tombstone: string): { db: Database; counts: string } {
  const db = openDatabase(path.join(dir, `${name}.db`), allMigrations);
  // A tombstone an earlier object left under a user's anchor: the sync pass revives it.
  db.prepare("INSERT INTO mv_objects (object_type, source_anchor, attrs, deleted, pending_export, updated_at) VALUES ('user', ?, '{\"title\":\"old\"}', 1, 1, 'x')").run(tombstone);
  const runs = new RunLog(db);
  const runId = runs.begin('cycle');
  const importStep = runs.step(runId, 'src', 'import');
  const syncStep: StepHandle = runs.step(runId, 'metaverse', 'sync');
  const sync = new Synchronizer(db, { kinds: new Map([['src', kind]]), rules: compileRules(undefined, [{ name: 'src', type: kind }]), joinRules: false, scopeRules: false });
  const stager = new ImportStager(
    db,
    'src',
    kind,
    projected ? { project: (objects) => sync.projectStaged('src', objects), linked: (objects) => sync.stagedLinked('src', objects, syncStep) } : undefined,
  );
  sync.requeueFailed();
  for (const page of pages) stager.stagePage(structuredClone(page), importStep.counts, () => sync.pass(syncStep));
  stager.markUnseenDeleted(importStep.counts);
  sync.pass(syncStep);
  return { db, counts: JSON.stringify({ import: importStep.counts, sync: syncStep.counts }) };
}

/** Every engine table, with metaverse ids replaced by the anchor that projected the object. */
function state(db: Database): unknown {
  const anchorOf = new Map(db.prepare<[], { id: number; a: string }>("SELECT id, object_type || ':' || source_anchor AS a FROM mv_objects").all().map((r) => [r.id, r.a]));
  const mv = (id: number | null) => (id == null ? null : (anchorOf.get(id) ?? `missing ${id}`));
  return {
    cs: db
      .prepare<[], Record<string, unknown> & { mv_id: number | null }>('SELECT * FROM cs_objects ORDER BY connector, anchor')
      .all()
      .map((r) => ({ ...r, mv_id: mv(r.mv_id) })),
    csMembers: db.prepare('SELECT * FROM cs_members ORDER BY connector, group_anchor, member_dn').all(),
    mv: db
      .prepare<[], { object_type: string; source_anchor: string; attrs: string; deleted: number; pending_export: number }>('SELECT object_type, source_anchor, attrs, deleted, pending_export FROM mv_objects')
      .all()
      .sort((a, b) => (a.object_type + a.source_anchor < b.object_type + b.source_anchor ? -1 : 1)),
    mvMembers: db
      .prepare<[], { group_id: number; member_id: number }>('SELECT group_id, member_id FROM mv_members')
      .all()
      .map((r) => `${mv(r.group_id)} > ${mv(r.member_id)}`)
      .sort(),
    joinKeys: db.prepare('SELECT COUNT(*) AS n FROM mv_join_keys').get(),
  };
}

for (const seed of SEEDS) {
  for (const kind of ['ldap', 'ad'] as const) {
    test(`seed ${seed}, ${kind}: projecting new users as they are staged leaves the state of staging then syncing them`, () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'idsync-projection-'));
      try {
        const pages = directory(seed, kind);
        const tombstone = pages.flat().find((o) => o.objectType === 'user')!.anchor;
        const a = run(dir, 'projected', kind, pages, true, tombstone);
        const b = run(dir, 'pending', kind, pages, false, tombstone);
        assert.deepEqual(state(a.db), state(b.db));
        // The counts too, but for one case: an anchor staged twice in the page that created it. Staged
        // pending, the page's sync sees one add; projected, the first copy is an add and the second an
        // update of it (the same end state, one metaverse write more).
        let twiceInItsFirstPage = 0;
        const seen = new Set<string>([tombstone]);
        for (const page of pages) {
          const fresh = new Set<string>();
          const twice = new Set<string>();
          for (const o of page) {
            if (!seen.has(o.anchor)) fresh.add(o.anchor);
            else if (fresh.has(o.anchor)) twice.add(o.anchor);
            seen.add(o.anchor);
          }
          twiceInItsFirstPage += twice.size;
        }
        const expected = JSON.parse(b.counts) as { sync: { updates: number } };
        expected.sync.updates += twiceInItsFirstPage;
        assert.equal(a.counts, JSON.stringify(expected));
        // The shortcut was taken (rows written linked, never pending), and stepped aside where it must.
        const linkedAtOnce = a.db.prepare("SELECT COUNT(*) AS n FROM mv_objects WHERE object_type = 'user' AND deleted = 0").get() as { n: number };
        assert.ok(linkedAtOnce.n > 10);
        a.db.close();
        b.db.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
}
