/** Storage and the look-ups other parts of the cloud directory use (sign-in). */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openDatabase, type Database } from '../../../src/store/database.js';
import { findUserForSignIn, findUserIdsByExternalIds, scimMigrations } from '../../../src/cloud/scim/index.js';
import { ScimService } from '../../../src/cloud/scim/service.js';
import { SqliteStore } from '../../../src/cloud/store/sqlite.js';
import { USERS } from '../../../src/cloud/scim/resources/users.js';
import { startScim, user } from './helpers.js';

let dir: string;
let db: Database;
let svc: ScimService;
let store: SqliteStore;
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'idsync-scim-repo-'));
  db = openDatabase(path.join(dir, 'r.db'), scimMigrations);
  store = new SqliteStore(db);
  svc = new ScimService(store);
});
after(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('migrations', () => {
  test('create the SCIM tables once (re-opening applies nothing new)', () => {
    const ids = db.prepare("SELECT id FROM schema_migrations WHERE id LIKE 'scim/%'").pluck().all();
    assert.deepEqual(ids, ['scim/001']);
    const again = openDatabase(path.join(dir, 'r.db'), scimMigrations);
    assert.deepEqual(again.prepare("SELECT count(*) FROM schema_migrations WHERE id LIKE 'scim/%'").pluck().get(), 1);
    again.close();
  });
});

describe('findUserForSignIn', () => {
  test('finds a user by userName case-insensitively', async () => {
    const u = await svc.create(USERS, user('Sign.In@Corp.Example', { externalId: 'anchor-s', active: true }));
    assert.deepEqual((await findUserForSignIn(store, 'sign.in@corp.example')), { id: u.id, userName: 'Sign.In@Corp.Example', active: true, externalId: 'anchor-s' });
    assert.deepEqual((await findUserForSignIn(store, 'SIGN.IN@CORP.EXAMPLE'))?.id, u.id);
  });

  test('reports active=false for a disabled user and active=true when active is unassigned', async () => {
    await svc.create(USERS, user('disabled@corp.example', { active: false }));
    await svc.create(USERS, user('noflag@corp.example'));
    assert.equal((await findUserForSignIn(store, 'disabled@corp.example'))?.active, false);
    assert.deepEqual((await findUserForSignIn(store, 'noflag@corp.example'))?.active, true);
    assert.equal((await findUserForSignIn(store, 'noflag@corp.example'))?.externalId, null);
  });

  test('returns undefined for an unknown user', async () => {
    assert.equal((await findUserForSignIn(store, 'nobody@corp.example')), undefined);
  });

  test('follows userName changes', async () => {
    const u = await svc.create(USERS, user('old-name@corp.example'));
    await svc.replace(USERS, u.id, user('new-name@corp.example'));
    assert.equal((await findUserForSignIn(store, 'old-name@corp.example')), undefined);
    assert.equal((await findUserForSignIn(store, 'new-name@corp.example'))?.id, u.id);
  });
});

describe('findUserIdsByExternalIds', () => {
  test('maps known externalIds to ids (exact case), skipping unknown ones, in chunks', async () => {
    const ids = new Map<string, string>();
    await svc.transaction(async (_repo, tx) => {
      for (let i = 0; i < 1200; i++) ids.set(`ext-${i}`, (await svc.create(USERS, user(`bulk-ext-${i}`, { externalId: `ext-${i}` }), tx)).id);
    });
    const wanted = [...ids.keys(), 'unknown', 'EXT-1', 'ext-1'];
    const got = await findUserIdsByExternalIds(store, wanted);
    assert.equal(got.size, 1200);
    assert.equal(got.get('ext-1'), ids.get('ext-1'));
    assert.equal(got.get('ext-1199'), ids.get('ext-1199'));
    assert.equal(got.has('EXT-1'), false);
    assert.equal(got.has('unknown'), false);
    assert.equal((await findUserIdsByExternalIds(store, [])).size, 0);
  });
});

describe('registerScim options', () => {
  test('basePath and publicUrl are honoured', async () => {
    const h = await startScim({ basePath: '/api/scim', publicUrl: 'https://cloud.example/api/scim' });
    try {
      assert.ok(h.base.endsWith('/api/scim'));
      const res = await h.call('POST', '/Users', user('base-path'));
      assert.equal(res.status, 201);
      assert.equal(res.headers.location, `https://cloud.example/api/scim/Users/${res.body.id}`);
      assert.equal((await h.call('GET', `${h.base.replace('/api/scim', '/scim/v2')}/Users`)).status, 404);
    } finally {
      await h.close();
    }
  });
});
