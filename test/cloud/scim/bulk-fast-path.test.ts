/**
 * Bulk's fast path (a User POST, PUT or PATCH run synchronously inside its SQLite slice,
 * src/cloud/scim/bulk.ts) against the general path (`fastPath: false`): the same seeded random
 * Bulk requests — valid and invalid users, userName/externalId collisions in any case, If-Match
 * versions right and wrong, unknown ids, bulkId references, groups, deletes, failOnErrors — go to
 * two services on two SQLite files; every answer and the final tables must be the same, once each
 * side's generated ids are replaced by the order they were created in.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { runBulk } from '../../../src/cloud/scim/bulk.js';
import { scimMigrations } from '../../../src/cloud/scim/repository.js';
import { ScimService } from '../../../src/cloud/scim/service.js';
import { SqliteStore } from '../../../src/cloud/store/sqlite.js';
import { openDatabase } from '../../../src/store/database.js';
import { prng } from '../../helpers/prng.js';
import { BULK, ENTERPRISE, PATCH_OP, USER } from './helpers.js';

const BASE = 'http://cloud.test/scim/v2';
const SEED = Number(process.env.IDSYNC_TEST_SEED ?? 20261206);

interface Side {
  svc: ScimService;
  store: SqliteStore;
  /** Ids this side created, in order: label i is ids[i]. */
  ids: string[];
}

function side(dir: string, name: string): Side {
  const store = new SqliteStore(openDatabase(path.join(dir, `${name}.db`), scimMigrations));
  return { svc: new ScimService(store), store, ids: [] };
}

/** Bulk operations with symbolic ids ("@3" = the 4th resource created so far, on each side). */
function randomRequest(rand: () => number, created: number, n: number): { body: Record<string, unknown>; symbolic: string } {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const names = ['ann', 'Ann', 'ANN', 'bob', 'cyd', 'dee', 'eve', 'fay'];
  const existing = () => (created > 0 && rand() < 0.85 ? `@${Math.floor(rand() * created)}` : pick(['00000000-0000-7000-8000-000000000000', 'nope']));
  const user = (extra: Record<string, unknown> = {}) => ({
    schemas: [USER, ENTERPRISE],
    userName: `${pick(names)}@x.test`,
    ...(rand() < 0.7 ? { externalId: `ext-${pick(names).toLowerCase()}` } : {}),
    displayName: pick(['A', 'B', 'C']),
    ...(rand() < 0.5 ? { emails: [{ value: `${pick(names)}@mail.test`, type: 'work', primary: true }] } : {}),
    ...(rand() < 0.3 ? { [ENTERPRISE]: { department: pick(['D1', 'D2']) } } : {}),
    ...(rand() < 0.5 ? { active: rand() < 0.5 } : {}),
    ...extra,
  });
  const badUser = () =>
    pick([
      () => user({ emails: [{ value: 'not-an-address' }] }),
      () => user({ nickName: 'x', unknownThing: 1 }),
      () => ({ schemas: [USER], displayName: 'no userName' }),
      () => user({ active: 'yes' }),
      () => ({ ...user(), USERNAME: 'twice@x.test' }),
      () => user({ id: 'ignored-readOnly', meta: { version: 'W/"9"' } }),
      () => 'not an object',
    ])();
  const ops: unknown[] = [];
  const bulkIds: string[] = [];
  for (let k = 0; k < n; k++) {
    const r = rand();
    const users = pick(['/Users', 'Users', '/users']);
    if (r < 0.4) {
      const bulkId = rand() < 0.1 && bulkIds.length ? pick(bulkIds) : `b${k}`;
      bulkIds.push(bulkId);
      ops.push({ method: 'POST', path: users, bulkId, data: rand() < 0.75 ? user() : badUser() });
    } else if (r < 0.6) {
      const target = bulkIds.length && rand() < 0.2 ? `bulkId:${pick(bulkIds)}` : existing();
      const version = rand() < 0.3 ? { version: pick(['W/"1"', 'W/"2"', 'W/"7"']) } : {};
      ops.push({ method: 'PUT', path: `${users}/${target}`, ...version, data: rand() < 0.8 ? user() : badUser() });
    } else if (r < 0.8) {
      const target = bulkIds.length && rand() < 0.2 ? `bulkId:${pick(bulkIds)}` : existing();
      const version = rand() < 0.3 ? { version: pick(['W/"1"', 'W/"2"']) } : {};
      const patch = pick([
        { op: 'replace', path: 'title', value: pick(['T1', 'T2']) },
        { op: 'replace', path: 'userName', value: `${pick(names)}@x.test` },
        { op: 'replace', path: 'externalId', value: `ext-${pick(names).toLowerCase()}` },
        { op: 'add', path: 'emails', value: [{ value: 'added@mail.test', type: 'home' }] },
        { op: 'remove', path: 'displayName' },
        { op: 'remove', path: 'userName' },
        { op: 'replace', path: 'nosuchattr', value: 1 },
        { op: 'replace', value: { title: 'T3', active: false } },
      ]);
      ops.push({ method: 'PATCH', path: `${users}/${target}`, ...version, data: { schemas: [PATCH_OP], Operations: [patch] } });
    } else if (r < 0.9) {
      ops.push({ method: 'DELETE', path: `${users}/${existing()}` });
    } else {
      const members = bulkIds.slice(-2).map((b) => ({ value: `bulkId:${b}` }));
      ops.push({ method: 'POST', path: '/Groups', bulkId: `g${k}`, data: { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: `G${k}`, members } });
    }
  }
  const body: Record<string, unknown> = { schemas: [BULK], Operations: ops };
  if (rand() < 0.2) body.failOnErrors = 1 + Math.floor(rand() * 3);
  return { body, symbolic: JSON.stringify(body) };
}

/** The request with "@i" replaced by this side's i-th id. */
const resolve = (symbolic: string, s: Side): unknown => JSON.parse(symbolic.replace(/@(\d+)/g, (m, i: string) => s.ids[Number(i)] ?? m));

/** Text with this side's ids replaced by their labels. */
function label(text: string, s: Side): string {
  let out = text;
  s.ids.forEach((id, i) => (out = out.split(id).join(`@${i}`)));
  return out;
}

async function tables(s: Side): Promise<string> {
  const users = await s.store.all('SELECT id, version, external_id, user_name, user_name_lc, display_name, display_name_lc, active, doc FROM scim_users ORDER BY user_name_lc');
  const groups = await s.store.all('SELECT id, version, display_name, doc FROM scim_groups ORDER BY display_name');
  const members = await s.store.all('SELECT group_id, member_id, member_type FROM scim_group_members ORDER BY group_id, member_id');
  return label(JSON.stringify({ users, groups, members: members.map((m) => JSON.stringify(m)).map((m) => label(m, s)).sort() }), s);
}

test(`Bulk's fast path answers and stores exactly what the general path does (seeded random requests, seed ${SEED})`, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'idsync-bulk-fast-'));
  const fast = side(dir, 'fast');
  const general = side(dir, 'general');
  const rand = prng(SEED);
  let fastOps = 0;
  try {
    for (let round = 0; round < 60; round++) {
      const { symbolic } = randomRequest(rand, fast.ids.length, 1 + Math.floor(rand() * 25));
      const answers: string[] = [];
      for (const [s, fastPath] of [
        [fast, true],
        [general, false],
      ] as const) {
        const res = await runBulk(s.svc, resolve(symbolic, s), BASE, { fastPath });
        const ops = res.Operations as { method: string; status: string; location?: string }[];
        // New ids, in the order created: the same operations succeed on both sides, so labels line up.
        for (const o of ops) if (o.method === 'POST' && o.status === '201') s.ids.push(o.location!.slice(o.location!.lastIndexOf('/') + 1));
        answers.push(label(JSON.stringify(res), s));
      }
      assert.equal(answers[0], answers[1], `round ${round} (seed ${SEED}): the answers differ for ${symbolic}`);
      assert.equal(await tables(fast), await tables(general), `round ${round} (seed ${SEED}): the tables differ after ${symbolic}`);
      fastOps += (JSON.parse(symbolic) as { Operations: { method: string; path: string }[] }).Operations.filter((o) => o.method !== 'DELETE' && /^\/?users/i.test(o.path)).length;
    }
    // The run exercised both outcomes: users were created and some operations failed.
    const final = await fast.store.all<{ n: number }>('SELECT count(*) AS n FROM scim_users');
    assert.ok(final[0]!.n > 0 && fast.ids.length > 10, 'the random requests created users');
    assert.ok(fastOps > 300, `the fast path saw ${fastOps} operations`);
  } finally {
    await fast.store.close();
    await general.store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
