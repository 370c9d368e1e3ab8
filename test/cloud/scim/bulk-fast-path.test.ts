/**
 * Bulk's fast path (a User POST, PUT or PATCH and a Group POST run synchronously inside its SQLite
 * slice, src/cloud/scim/bulk.ts) against the general path (`fastPath: false`): the same seeded random
 * Bulk requests — valid and invalid users, userName/externalId collisions in any case, If-Match
 * versions right and wrong, unknown ids, bulkId references, groups with no, few or many members
 * (across addMembersNow's chunks) that exist, are missing, repeat, have the wrong type or were
 * created earlier in the request, group externalId collisions, a member whose row a trigger refuses
 * (a failure after the group's first writes), deletes, failOnErrors — go to two services on two
 * SQLite files; every answer and the final tables (versions and timestamps too: both services read
 * one clock, moved per request) must be the same, once each side's generated ids are replaced by
 * the order they were created in.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { runBulk } from '../../../src/cloud/scim/bulk.js';
import { MEMBER_INSERT_ROWS, scimMigrations } from '../../../src/cloud/scim/repository.js';
import { ScimService } from '../../../src/cloud/scim/service.js';
import { SqliteStore } from '../../../src/cloud/store/sqlite.js';
import { openDatabase } from '../../../src/store/database.js';
import { prng } from '../../helpers/prng.js';
import { BULK, ENTERPRISE, GROUP, ONPREM_GROUP, PATCH_OP, USER } from './helpers.js';

const BASE = 'http://cloud.test/scim/v2';
const SEED = Number(process.env.IDSYNC_TEST_SEED ?? 20261206);

/** Users created before the random requests: enough for groups of 2.5 member chunks. */
const SEED_USERS = 4 * MEMBER_INSERT_ROWS;
/** The label of the seeded user a trigger keeps out of every group (it is never deleted). */
const POISON = 0;
const MISSING = ['00000000-0000-7000-8000-000000000000', 'nope'];

interface Side {
  svc: ScimService;
  store: SqliteStore;
  /** Ids this side created, in order: label i is ids[i]. */
  ids: string[];
  labels: Map<string, number>;
}

/** What both services take as the time: a request's writes all carry the same one. */
const clock = { now: '' };

function side(dir: string, name: string): Side {
  const store = new SqliteStore(openDatabase(path.join(dir, `${name}.db`), scimMigrations));
  return { svc: new ScimService(store, undefined, () => clock.now), store, ids: [], labels: new Map() };
}

/** Labels of the users (except POISON) and groups that exist now. */
interface Live {
  users: number[];
  groups: number[];
}

/** Bulk operations with symbolic ids ("@3" = the 4th resource created so far, on each side). */
function randomRequest(rand: () => number, created: number, n: number, live: Live): { body: Record<string, unknown>; symbolic: string } {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const names = ['ann', 'Ann', 'ANN', 'bob', 'cyd', 'dee', 'eve', 'fay'];
  const existing = () => (created > 0 && rand() < 0.85 ? `@${Math.floor(rand() * created)}` : pick(MISSING));
  const someUser = () => `@${pick(live.users)}`;
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
  const groupBulkIds: string[] = [];
  let k = 0;
  /** One member of any kind: a user or group (existing, deleted, unknown, or by bulkId, even of a later POST), with or without a type, right or wrong. */
  const member = (): Record<string, unknown> => {
    const r = rand();
    const [value, type]: [string, string | undefined] =
      r < 0.45
        ? [someUser(), 'User']
        : r < 0.6 && live.groups.length
          ? [`@${pick(live.groups)}`, 'Group']
          : r < 0.7 && bulkIds.length
            ? [`bulkId:${pick(bulkIds)}`, 'User']
            : r < 0.75 && groupBulkIds.length
              ? [`bulkId:${pick(groupBulkIds)}`, 'Group']
              : r < 0.78
                ? [`bulkId:b${k + 1 + Math.floor(rand() * 3)}`, undefined]
                : r < 0.92
                  ? [existing(), undefined]
                  : [pick(MISSING), undefined];
    const t = rand();
    return { value, ...(t < 0.4 ? {} : t < 0.9 ? { type: type ?? pick(['User', 'Group']) } : { type: pick(['User', 'Group', 'user', 'group']) }) };
  };
  /** Distinct existing users across one or two chunk boundaries, a few repeats, and sometimes one bad member. */
  const manyMembers = (): Record<string, unknown>[] => {
    const pool = [...live.users];
    const count = Math.min(pool.length, MEMBER_INSERT_ROWS + Math.floor(rand() * MEMBER_INSERT_ROWS * 1.5));
    const out: Record<string, unknown>[] = [];
    for (let i = 0; i < count; i++) {
      const j = i + Math.floor(rand() * (pool.length - i));
      [pool[i], pool[j]] = [pool[j]!, pool[i]!];
      out.push({ value: `@${pool[i]}`, ...(rand() < 0.5 ? { type: 'User' } : {}) });
    }
    for (let d = Math.floor(rand() * 4); d > 0; d--) out.splice(Math.floor(rand() * out.length), 0, { ...pick(out), ...(rand() < 0.5 ? { type: pick(['User', 'Group']) } : {}) });
    const f = rand();
    const at = Math.floor(rand() * (out.length + 1));
    if (f < 0.2) out.splice(at, 0, { value: `@${POISON}` });
    else if (f < 0.3) out.splice(at, 0, { value: pick(MISSING) });
    else if (f < 0.4) out.splice(at, 0, { value: someUser(), type: 'Group' });
    else if (f < 0.5) out.splice(at, 0, member());
    return out;
  };
  const group = (): unknown => {
    const s = rand();
    const members = s < 0.1 ? undefined : s < 0.15 ? [] : s < 0.55 ? Array.from({ length: 1 + Math.floor(rand() * 6) }, member) : manyMembers();
    const onprem = rand() < 0.2;
    return {
      schemas: onprem ? [GROUP, ONPREM_GROUP] : [GROUP],
      displayName: pick(['Staff', 'staff', 'Ops', 'bulkId:b1']),
      ...(rand() < 0.4 ? { externalId: `gext-${pick([1, 2, 3, 4])}` } : {}),
      ...(onprem ? { [ONPREM_GROUP]: { onPremisesSamAccountName: pick(['staff', 'ops']) } } : {}),
      ...(members ? { members } : {}),
    };
  };
  const badGroup = () =>
    pick([
      () => ({ schemas: [GROUP], members: [{ value: someUser() }] }),
      () => ({ schemas: [GROUP], displayName: 'Bad', members: someUser() }),
      () => ({ schemas: [GROUP], displayName: 'Bad', members: [{ value: someUser() }, { type: 'User' }] }),
      () => ({ schemas: [GROUP], displayName: 'Bad', members: [{ value: someUser() }, { display: 'only readOnly' }] }),
      () => ({ schemas: [GROUP], displayName: 'Bad', members: [{ value: 5 }] }),
      () => ({ schemas: [GROUP], displayName: 'Bad', members: [{ value: someUser(), type: 'Robot' }] }),
      () => ({ schemas: [USER], displayName: 'Bad' }),
      () => 'not an object',
    ])();
  for (; k < n; k++) {
    const r = rand();
    const users = pick(['/Users', 'Users', '/users']);
    if (r < 0.34) {
      const bulkId = rand() < 0.1 && bulkIds.length ? pick(bulkIds) : `b${k}`;
      bulkIds.push(bulkId);
      ops.push({ method: 'POST', path: users, bulkId, data: rand() < 0.75 ? user() : badUser() });
    } else if (r < 0.5) {
      const target = bulkIds.length && rand() < 0.2 ? `bulkId:${pick(bulkIds)}` : existing();
      const version = rand() < 0.3 ? { version: pick(['W/"1"', 'W/"2"', 'W/"7"']) } : {};
      ops.push({ method: 'PUT', path: `${users}/${target}`, ...version, data: rand() < 0.8 ? user() : badUser() });
    } else if (r < 0.66) {
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
    } else if (r < 0.74) {
      const target = existing();
      ops.push({ method: 'DELETE', path: `${users}/${target === `@${POISON}` ? pick(MISSING) : target}` });
    } else if (r < 0.78) {
      ops.push({ method: 'DELETE', path: `/Groups/${live.groups.length && rand() < 0.8 ? `@${pick(live.groups)}` : existing()}` });
    } else {
      const bulkId = `g${k}`;
      const path = rand() < 0.03 ? `/Groups/${existing()}` : pick(['/Groups', 'Groups', '/groups']);
      ops.push({ method: 'POST', path, bulkId, data: rand() < 0.9 ? group() : badGroup() });
      groupBulkIds.push(bulkId);
    }
  }
  const body: Record<string, unknown> = { schemas: [BULK], Operations: ops };
  if (rand() < 0.2) body.failOnErrors = 1 + Math.floor(rand() * 3);
  return { body, symbolic: JSON.stringify(body) };
}

/** The request with "@i" replaced by this side's i-th id. */
const resolve = (symbolic: string, s: Side): unknown => JSON.parse(symbolic.replace(/@(\d+)/g, (m, i: string) => s.ids[Number(i)] ?? m));

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/** Text with this side's ids replaced by their labels. */
const label = (text: string, s: Side): string => text.replace(UUID, (id) => (s.labels.has(id) ? `@${s.labels.get(id)!}` : id));

async function tables(s: Side): Promise<string> {
  const users = await s.store.all('SELECT id, version, created, last_modified, external_id, user_name, user_name_lc, display_name, display_name_lc, active, doc FROM scim_users ORDER BY user_name_lc');
  const groups = await s.store.all('SELECT id, version, created, last_modified, external_id, display_name, display_name_lc, doc FROM scim_groups');
  const members = await s.store.all('SELECT group_id, member_id, member_type FROM scim_group_members');
  const sorted = (rows: unknown[]) => rows.map((r) => label(JSON.stringify(r), s)).sort();
  return JSON.stringify({ users: label(JSON.stringify(users), s), groups: sorted(groups), members: sorted(members) });
}

async function live(s: Side): Promise<Live> {
  const labels = async (table: string) => (await s.store.all<{ id: string }>(`SELECT id FROM ${table}`)).map((r) => s.labels.get(r.id)!);
  return { users: (await labels('scim_users')).filter((l) => l !== POISON), groups: await labels('scim_groups') };
}

type Answer = { method: string; bulkId?: string; status: string; location?: string; response?: { detail?: string } };

test(`Bulk's fast path answers and stores exactly what the general path does (seeded random requests, seed ${SEED})`, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'idsync-bulk-fast-'));
  const fast = side(dir, 'fast');
  const general = side(dir, 'general');
  const rand = prng(SEED);
  let fastOps = 0;
  let requests = 0;
  /** What the fast side's Group POSTs came to: "201", "201 many" (more members than a chunk), or the error's status and detail pattern. */
  const groupOutcomes = new Map<string, number>();
  /** Runs one request on both sides and compares; returns the fast side's answers. */
  const round = async (name: string, symbolic: string): Promise<Answer[]> => {
    clock.now = new Date(Date.UTC(2026, 0, 1) + ++requests * 1000).toISOString();
    const answers: string[] = [];
    let out: Answer[] = [];
    for (const [s, fastPath] of [
      [fast, true],
      [general, false],
    ] as const) {
      const res = await runBulk(s.svc, resolve(symbolic, s), BASE, { fastPath });
      const ops = res.Operations as Answer[];
      // New ids, in the order created: the same operations succeed on both sides, so labels line up.
      for (const o of ops) {
        if (o.method !== 'POST' || o.status !== '201') continue;
        const id = o.location!.slice(o.location!.lastIndexOf('/') + 1);
        s.labels.set(id, s.ids.length);
        s.ids.push(id);
      }
      answers.push(label(JSON.stringify(res), s));
      if (fastPath) out = ops;
    }
    assert.equal(answers[0], answers[1], `${name} (seed ${SEED}): the answers differ for ${symbolic}`);
    assert.equal(await tables(fast), await tables(general), `${name} (seed ${SEED}): the tables differ after ${symbolic}`);
    return out;
  };
  try {
    const seed = Array.from({ length: SEED_USERS }, (_, i) => ({ method: 'POST', path: '/Users', bulkId: `s${i}`, data: { schemas: [USER], userName: `seed${i}@x.test`, displayName: `Seed ${i}` } }));
    await round('seeding', JSON.stringify({ schemas: [BULK], Operations: seed }));
    // A member row that cannot be written: a Group POST fails after its first writes, which must all go.
    for (const s of [fast, general]) {
      s.store.db.exec(`CREATE TRIGGER poisoned BEFORE INSERT ON scim_group_members WHEN NEW.member_id = '${s.ids[POISON]}' BEGIN SELECT RAISE(ABORT, 'poisoned member'); END`);
    }
    for (let r = 0; r < 80; r++) {
      const { symbolic } = randomRequest(rand, fast.ids.length, 1 + Math.floor(rand() * 25), await live(fast));
      const answers = await round(`round ${r}`, symbolic);
      const ops = (JSON.parse(symbolic) as { Operations: { method: string; path: string; bulkId?: string; data?: { members?: { value: string }[] } }[] }).Operations;
      fastOps += ops.filter((o) => o.method !== 'DELETE' && /^\/?users/i.test(o.path)).length;
      for (const a of answers) {
        if (a.method !== 'POST' || !a.bulkId?.startsWith('g')) continue;
        const members = ops.find((o) => o.bulkId === a.bulkId)!.data?.members;
        const many = Array.isArray(members) && new Set(members.map((m) => m.value)).size > MEMBER_INSERT_ROWS;
        const outcome = a.status === '201' ? (many ? '201 many' : '201') : `${a.status} ${(a.response?.detail ?? '').replace(/"[^"]*"/g, '…')}`;
        groupOutcomes.set(outcome, (groupOutcomes.get(outcome) ?? 0) + 1);
      }
    }
    // The run exercised both outcomes: users were created and some operations failed.
    const final = await fast.store.all<{ n: number }>('SELECT count(*) AS n FROM scim_users');
    assert.ok(final[0]!.n > 0 && fast.ids.length > SEED_USERS + 10, 'the random requests created users');
    assert.ok(fastOps > 300, `the fast path saw ${fastOps} User operations`);
    // ... and every kind of Group POST outcome.
    const seen = [...groupOutcomes.keys()];
    for (const want of [/^201$/, /^201 many$/, /^400 members: no User or Group has id …$/, /^400 members: … is a User, not a Group$/, /^409 externalId … is already used by another Group$/, /^500 /, /^400 attribute /]) {
      assert.ok(seen.some((o) => want.test(o)), `no Group POST came to ${want}; outcomes:\n${seen.join('\n')}`);
    }
  } finally {
    await fast.store.close();
    await general.store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
