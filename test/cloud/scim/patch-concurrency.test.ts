/**
 * A PATCH is worked out on a snapshot, outside the write lock, and written under it
 * (service.ts). When another writer changes the resource in between, nothing it wrote is lost: a
 * plain PATCH is worked out again on the new version; one with If-Match naming the old version is
 * 412. The "in between" is made exact by running the other writer when the PATCH's read-only
 * snapshot transaction ends (a wrapper around the real store: the interleaving cannot be timed
 * otherwise). Runs on SQLite, or PostgreSQL with IDSYNC_CLOUD_TEST_STORE=postgres.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GROUPS } from '../../../src/cloud/scim/resources/groups.js';
import { USERS } from '../../../src/cloud/scim/resources/users.js';
import { etagOf, ScimService } from '../../../src/cloud/scim/service.js';
import type { CloudStore, Sql } from '../../../src/cloud/store/sql.js';
import { GROUP, openTestScimStore, PATCH_OP, user } from './helpers.js';

let dir: string;
let store: CloudStore;
let other: ScimService;
before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'idsync-scim-patch-'));
  ({ store } = await openTestScimStore(dir));
  other = new ScimService(store);
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** `store`, except that `between` runs once, right after the first read-only transaction. */
function interleaved(between: () => Promise<void>): Sql {
  let armed = true;
  return {
    dialect: store.dialect,
    forUpdate: store.forUpdate,
    all: (sql, params) => store.all(sql, params),
    get: (sql, params) => store.get(sql, params),
    run: (sql, params) => store.run(sql, params),
    lock: (name) => store.lock(name),
    transaction: async (fn, options) => {
      const out = await store.transaction(fn, options);
      if (options?.readOnly && armed) {
        armed = false;
        await between();
      }
      return out;
    },
  };
}

const addMember = (value: string) => ({ schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'members', value: [{ value }] }] });

async function groupWithMember(name: string): Promise<{ groupId: string; users: string[] }> {
  const users: string[] = [];
  for (const n of ['a', 'b', 'c']) users.push((await other.create(USERS, user(`${name}-${n}@example.com`))).id);
  const g = await other.create(GROUPS, { schemas: [GROUP], displayName: name, members: [{ value: users[0] }] });
  return { groupId: g.id, users };
}

describe('PATCH against a write between its snapshot and its write', () => {
  test('a plain PATCH is worked out again on the new version: both writers\u2019 members are kept', async () => {
    const { groupId, users } = await groupWithMember('plain');
    const svc = new ScimService(interleaved(async () => void (await other.patch(GROUPS, groupId, addMember(users[2]!)))));
    const out = await svc.patch(GROUPS, groupId, addMember(users[1]!));
    assert.deepEqual(new Set(out.members!.map((m) => m.value)), new Set(users));
    const stored = await other.get(GROUPS, groupId);
    assert.deepEqual(new Set(stored.members!.map((m) => m.value)), new Set(users));
    assert.equal(stored.version, 3, 'created, the other writer, this PATCH');
  });

  test('a PATCH with If-Match of the version it read is 412, and the other writer\u2019s change stays', async () => {
    const { groupId, users } = await groupWithMember('if-match');
    const v1 = etagOf((await other.get(GROUPS, groupId)).version);
    const svc = new ScimService(interleaved(async () => void (await other.patch(GROUPS, groupId, addMember(users[2]!)))));
    await assert.rejects(svc.patch(GROUPS, groupId, addMember(users[1]!), v1), (err: { status?: number }) => err.status === 412);
    const stored = await other.get(GROUPS, groupId);
    assert.deepEqual(new Set(stored.members!.map((m) => m.value)), new Set([users[0], users[2]]));
  });
});
