/** Storage and the look-ups other parts of the cloud directory use (sign-in). */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openDatabase, type Database } from '../../../src/store/database.js';
import { findUserForSignIn, findUserIdsByExternalIds, scimMigrations } from '../../../src/cloud/scim/index.js';
import { ScimService } from '../../../src/cloud/scim/service.js';
import { USERS } from '../../../src/cloud/scim/resources/users.js';
import { startScim, user } from './helpers.js';

let dir: string;
let db: Database;
let svc: ScimService;
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'idsync-scim-repo-'));
  db = openDatabase(path.join(dir, 'r.db'), scimMigrations);
  svc = new ScimService(db);
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
  test('finds a user by userName case-insensitively', () => {
    const u = svc.create(USERS, user('Sign.In@Corp.Example', { externalId: 'anchor-s', active: true }));
    assert.deepEqual(findUserForSignIn(db, 'sign.in@corp.example'), { id: u.id, userName: 'Sign.In@Corp.Example', active: true, externalId: 'anchor-s' });
    assert.deepEqual(findUserForSignIn(db, 'SIGN.IN@CORP.EXAMPLE')?.id, u.id);
  });

  test('reports active=false for a disabled user and active=true when active is unassigned', () => {
    svc.create(USERS, user('disabled@corp.example', { active: false }));
    svc.create(USERS, user('noflag@corp.example'));
    assert.equal(findUserForSignIn(db, 'disabled@corp.example')?.active, false);
    assert.deepEqual(findUserForSignIn(db, 'noflag@corp.example')?.active, true);
    assert.equal(findUserForSignIn(db, 'noflag@corp.example')?.externalId, null);
  });

  test('returns undefined for an unknown user', () => {
    assert.equal(findUserForSignIn(db, 'nobody@corp.example'), undefined);
  });

  test('follows userName changes', () => {
    const u = svc.create(USERS, user('old-name@corp.example'));
    svc.replace(USERS, u.id, user('new-name@corp.example'));
    assert.equal(findUserForSignIn(db, 'old-name@corp.example'), undefined);
    assert.equal(findUserForSignIn(db, 'new-name@corp.example')?.id, u.id);
  });
});

describe('findUserIdsByExternalIds', () => {
  test('maps known externalIds to ids (exact case), skipping unknown ones, in chunks', () => {
    const ids = new Map<string, string>();
    svc.transaction(() => {
      for (let i = 0; i < 1200; i++) ids.set(`ext-${i}`, svc.create(USERS, user(`bulk-ext-${i}`, { externalId: `ext-${i}` })).id);
    });
    const wanted = [...ids.keys(), 'unknown', 'EXT-1', 'ext-1'];
    const got = findUserIdsByExternalIds(db, wanted);
    assert.equal(got.size, 1200);
    assert.equal(got.get('ext-1'), ids.get('ext-1'));
    assert.equal(got.get('ext-1199'), ids.get('ext-1199'));
    assert.equal(got.has('EXT-1'), false);
    assert.equal(got.has('unknown'), false);
    assert.equal(findUserIdsByExternalIds(db, []).size, 0);
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
