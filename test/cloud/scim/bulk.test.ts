/* eslint-disable @typescript-eslint/no-explicit-any -- response bodies are untyped JSON */
/** Bulk (RFC 7644 §3.7) over real HTTP. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BULK, ERROR, PATCH_OP, startScim, user, type Harness } from './helpers.js';

let h: Harness;
before(async () => {
  h = await startScim();
});
after(async () => {
  await h.close();
});

const bulk = (Operations: unknown[], extra: Record<string, unknown> = {}) => ({ schemas: [BULK], Operations, ...extra });

describe('Bulk', () => {
  test('POST/PUT/PATCH/DELETE in one request, with bulkId references resolved in any order', async () => {
    const res = await h.call(
      'POST',
      '/Bulk',
      bulk([
        // The group refers to users defined further down: it is deferred until they exist.
        { method: 'POST', path: '/Groups', bulkId: 'g1', data: { displayName: 'Bulk Group', members: [{ value: 'bulkId:u1', type: 'User' }, { value: 'bulkId:u2' }] } },
        { method: 'POST', path: '/Users', bulkId: 'u1', data: user('bulk-1') },
        { method: 'POST', path: '/Users', bulkId: 'u2', data: user('bulk-2') },
        { method: 'PATCH', path: '/Users/bulkId:u1', data: { schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'title', value: 'Patched' }] } },
        { method: 'PUT', path: '/Users/bulkId:u2', data: user('bulk-2', { displayName: 'Put' }) },
      ]),
    );
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.schemas, ['urn:ietf:params:scim:api:messages:2.0:BulkResponse']);
    const ops = res.body.Operations;
    assert.deepEqual(
      ops.map((o: any) => [o.method, o.bulkId, o.status]),
      [
        ['POST', 'g1', '201'],
        ['POST', 'u1', '201'],
        ['POST', 'u2', '201'],
        ['PATCH', undefined, '200'],
        ['PUT', undefined, '200'],
      ],
    );
    const u1 = await h.call('GET', ops[1].location);
    assert.equal(u1.body.title, 'Patched');
    // Created (1), patched (2), then it joined the deferred group, which changed its groups[] (3).
    assert.equal(ops[3].version, 'W/"2"');
    assert.equal(u1.body.meta.version, 'W/"3"');
    const g = await h.call('GET', ops[0].location);
    assert.deepEqual(g.body.members.map((m: any) => m.display).sort(), ['Put', 'bulk-1']);

    const del = await h.call('POST', '/Bulk', bulk([{ method: 'DELETE', path: new URL(ops[1].location).pathname.replace(/^.*\/Users/, '/Users') }]));
    assert.equal(del.body.Operations[0].status, '204');
    assert.equal((await h.call('GET', ops[1].location)).status, 404);
  });

  test('a failing operation reports a SCIM error; the others are kept', async () => {
    const res = await h.call(
      'POST',
      '/Bulk',
      bulk([
        { method: 'POST', path: '/Users', bulkId: 'ok1', data: user('partial-1') },
        { method: 'POST', path: '/Users', bulkId: 'bad', data: user('partial-bad', { emails: [{ value: 'nope' }] }) },
        { method: 'POST', path: '/Users', bulkId: 'dup', data: user('PARTIAL-1') },
        { method: 'POST', path: '/Users', bulkId: 'ok2', data: user('partial-2') },
      ]),
    );
    const ops = res.body.Operations;
    assert.deepEqual(ops.map((o: any) => o.status), ['201', '400', '409', '201']);
    assert.deepEqual(ops[1].response.schemas, [ERROR]);
    assert.equal(ops[1].response.scimType, 'invalidValue');
    assert.match(ops[1].response.detail, /emails\.value/);
    assert.equal(ops[2].response.scimType, 'uniqueness');
    const list = await h.call('GET', `/Users?filter=${encodeURIComponent('userName sw "partial-"')}`);
    assert.equal(list.body.totalResults, 2);
  });

  test('failOnErrors stops processing after that many errors', async () => {
    const res = await h.call(
      'POST',
      '/Bulk',
      bulk(
        [
          { method: 'POST', path: '/Users', bulkId: 'a', data: user('foe-1') },
          { method: 'POST', path: '/Users', bulkId: 'b', data: { userName: 5 } },
          { method: 'POST', path: '/Users', bulkId: 'c', data: user('foe-3') },
        ],
        { failOnErrors: 1 },
      ),
    );
    assert.deepEqual(res.body.Operations.map((o: any) => o.status), ['201', '400']);
    assert.equal((await h.call('GET', `/Users?filter=${encodeURIComponent('userName eq "foe-3"')}`)).body.totalResults, 0);
  });

  test('references to a failed POST, to an undefined bulkId, or in a cycle → 409', async () => {
    const res = await h.call(
      'POST',
      '/Bulk',
      bulk([
        { method: 'POST', path: '/Users', bulkId: 'broken', data: { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'] } },
        { method: 'POST', path: '/Groups', bulkId: 'g-broken', data: { displayName: 'Refers to failed', members: [{ value: 'bulkId:broken' }] } },
        { method: 'POST', path: '/Groups', bulkId: 'g-undef', data: { displayName: 'Refers to nothing', members: [{ value: 'bulkId:nowhere' }] } },
        { method: 'POST', path: '/Groups', bulkId: 'x', data: { displayName: 'X', members: [{ value: 'bulkId:y' }] } },
        { method: 'POST', path: '/Groups', bulkId: 'y', data: { displayName: 'Y', members: [{ value: 'bulkId:x' }] } },
      ]),
    );
    const byId = Object.fromEntries(res.body.Operations.map((o: any) => [o.bulkId, o]));
    assert.equal(byId.broken.status, '400');
    assert.equal(byId['g-broken'].status, '409');
    assert.equal(byId['g-undef'].status, '409');
    assert.equal(byId.x.status, '409');
    assert.equal(byId.y.status, '409');
    assert.match(byId.x.response.detail, /circular/);
  });

  test('a second POST with the same bulkId fails alone (400); references go to the first, which succeeded', async () => {
    const res = await h.call(
      'POST',
      '/Bulk',
      bulk([
        { method: 'POST', path: '/Users', bulkId: 'twice', data: user('dup-bulkid-first') },
        { method: 'POST', path: '/Users', bulkId: 'twice', data: user('dup-bulkid-second') },
        { method: 'POST', path: '/Groups', bulkId: 'dup-g', data: { displayName: 'Dup refs', members: [{ value: 'bulkId:twice' }] } },
        { method: 'PATCH', path: '/Users/bulkId:twice', data: { schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'title', value: 'Patched' }] } },
      ]),
    );
    const ops = res.body.Operations;
    assert.deepEqual(
      ops.map((o: any) => [o.bulkId, o.status, o.response?.scimType]),
      [
        ['twice', '201', undefined],
        ['twice', '400', 'invalidValue'],
        ['dup-g', '201', undefined],
        [undefined, '200', undefined],
      ],
    );
    assert.match(ops[1].response.detail, /more than one POST/);
    const first = await h.call('GET', ops[0].location);
    assert.equal(first.body.title, 'Patched');
    assert.deepEqual((await h.call('GET', ops[2].location)).body.members.map((m: any) => m.value), [first.body.id]);
    assert.equal((await h.call('GET', `/Users?filter=${encodeURIComponent('userName eq "dup-bulkid-second"')}`)).body.totalResults, 0);
  });

  test('a bulkId compared to a member value in a PATCH path filter is replaced, and orders the operations', async () => {
    const existing = (await h.call('POST', '/Groups', { displayName: 'Filter refs (existing)' })).body;
    const res = await h.call(
      'POST',
      '/Bulk',
      bulk([
        { method: 'POST', path: '/Users', bulkId: 'f1', data: user('filter-ref-1') },
        { method: 'POST', path: '/Users', bulkId: 'f2', data: user('filter-ref-2') },
        { method: 'POST', path: '/Users', bulkId: 'f3', data: user('filter-ref-3', { displayName: 'bulkId:f3' }) },
        { method: 'POST', path: '/Groups', bulkId: 'fg', data: { displayName: 'Filter refs', members: [{ value: 'bulkId:f1' }, { value: 'bulkId:f2' }, { value: 'bulkId:f3' }] } },
        {
          method: 'PATCH',
          path: '/Groups/bulkId:fg',
          data: {
            schemas: [PATCH_OP],
            Operations: [
              { op: 'remove', path: 'members[value eq "bulkId:f1" or (type eq "User" and value eq "bulkId:f2")]' },
              // display is data: "bulkId:f3" there is the user's displayName, not a reference.
              { op: 'remove', path: 'members[display eq "bulkId:f3"]' },
            ],
          },
        },
        // Refers to f4 only in its filter: it waits for f4's POST further down (and then finds it a member).
        { method: 'PATCH', path: `/Groups/${existing.id}`, data: { schemas: [PATCH_OP], Operations: [{ op: 'remove', path: 'members[value eq "bulkId:f4"]' }] } },
        { method: 'POST', path: '/Users', bulkId: 'f4', data: user('filter-ref-4') },
        { method: 'PATCH', path: `/Groups/${existing.id}`, data: { schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'members', value: [{ value: 'bulkId:f4' }] }] } },
        // An undefined bulkId in a filter is a 409, as anywhere else, not a remove of nothing.
        { method: 'PATCH', path: `/Groups/${existing.id}`, data: { schemas: [PATCH_OP], Operations: [{ op: 'remove', path: 'members[value eq "bulkId:nowhere"]' }] } },
      ]),
    );
    const ops = res.body.Operations;
    assert.deepEqual(
      ops.map((o: any) => o.status),
      ['201', '201', '201', '201', '200', '200', '201', '200', '409'],
      JSON.stringify(ops),
    );
    assert.match(ops[8].response.detail, /"nowhere" is not defined/);
    const g = await h.call('GET', ops[3].location);
    assert.deepEqual(g.body.members, undefined, 'f1 and f2 by reference, f3 by its display');
    assert.equal((await h.call('GET', `/Groups/${existing.id}`)).body.members, undefined, 'the remove ran after f4 was added');
  });

  test('a version (If-Match) mismatch in an operation → 412 for that operation', async () => {
    const u = (await h.call('POST', '/Users', user('bulk-version'))).body;
    const res = await h.call('POST', '/Bulk', bulk([{ method: 'PUT', path: `/Users/${u.id}`, version: 'W/"42"', data: user('bulk-version', { title: 'x' }) }]));
    assert.equal(res.body.Operations[0].status, '412');
  });

  test('malformed requests: missing schemas → 400 invalidSyntax; bad path → 400 invalidPath for that operation', async () => {
    const res = await h.call('POST', '/Bulk', { Operations: [] });
    assert.equal(res.status, 400);
    assert.equal(res.body.scimType, 'invalidSyntax');
    const bad = await h.call('POST', '/Bulk', bulk([{ method: 'POST', path: '/Devices', bulkId: 'd', data: {} }]));
    assert.equal(bad.body.Operations[0].status, '400');
    assert.equal(bad.body.Operations[0].response.scimType, 'invalidPath');
  });

  test('more than maxOperations → 413', async () => {
    const ops = Array.from({ length: 1001 }, (_, i) => ({ method: 'DELETE', path: `/Users/x${i}` }));
    const res = await h.call('POST', '/Bulk', bulk(ops));
    assert.equal(res.status, 413);
    assert.deepEqual(res.body.schemas, [ERROR]);
    assert.match(res.body.detail, /maximum is 1000/);
  });

  test('a body larger than maxPayloadSize → 413', async () => {
    const small = await startScim({ limits: { maxPayloadSize: 10_000 } });
    try {
      const ops = Array.from({ length: 100 }, (_, i) => ({ method: 'POST', path: '/Users', bulkId: `b${i}`, data: user(`big-${i}-${'x'.repeat(100)}`) }));
      const res = await small.call('POST', '/Bulk', bulk(ops));
      assert.equal(res.status, 413);
      assert.deepEqual(res.body.schemas, [ERROR]);
      assert.equal((await small.call('GET', '/Users?count=0')).body.totalResults, 0);
    } finally {
      await small.close();
    }
  });

  test('20 bulks of 500 users in a row all succeed (throughput is measured by npm run bench:sync, not here)', async () => {
    for (let b = 0; b < 20; b++) {
      const ops = Array.from({ length: 500 }, (_, i) => ({
        method: 'POST',
        path: '/Users',
        bulkId: `p${i}`,
        data: user(`perf-${b}-${i}@corp.example`, {
          externalId: `anchor-${b}-${i}`,
          displayName: `Perf ${b} ${i}`,
          active: true,
          emails: [{ value: `perf-${b}-${i}@corp.example`, type: 'work', primary: true }],
          name: { givenName: 'Perf', familyName: `${b}-${i}` },
        }),
      }));
      const res = await h.call('POST', '/Bulk', bulk(ops));
      assert.equal(res.status, 200);
      assert.ok(res.body.Operations.every((o: any) => o.status === '201'));
    }
    const listed = await h.call('GET', '/Users?count=0&filter=' + encodeURIComponent('userName sw "perf-"'));
    assert.equal(listed.body.totalResults, 10_000);
  });

  test('a duplicate userName in the middle of 100 creates: that operation alone is 409 uniqueness, the others are created', async () => {
    // The unique index decides (in one transaction with the others): the existing user differs
    // only in case, and a second duplicate repeats a name created earlier in the same request.
    assert.equal((await h.call('POST', '/Users', user('dup-existing@example.com'))).status, 201);
    const before = ((await h.store.get<{ n: number }>('SELECT count(*) AS n FROM scim_users'))!).n;
    const ops = Array.from({ length: 100 }, (_, i) => ({ method: 'POST', path: '/Users', bulkId: `d${i}`, data: user(`dup-${i}@example.com`, { externalId: `dup-ext-${i}` }) }));
    ops[50] = { method: 'POST', path: '/Users', bulkId: 'd50', data: user('DUP-Existing@example.com', { externalId: 'dup-ext-50' }) };
    ops[70] = { method: 'POST', path: '/Users', bulkId: 'd70', data: user('dup-10@example.com', { externalId: 'dup-ext-70' }) };
    const res = await h.call('POST', '/Bulk', bulk(ops));
    assert.equal(res.status, 200);
    const statuses = res.body.Operations.map((o: any) => o.status);
    assert.deepEqual(statuses, ops.map((_, i) => (i === 50 || i === 70 ? '409' : '201')));
    for (const i of [50, 70]) {
      const r = res.body.Operations[i];
      assert.equal(r.bulkId, `d${i}`);
      assert.equal(r.response.scimType, 'uniqueness');
      assert.match(r.response.detail, /userName/);
    }
    const after = ((await h.store.get<{ n: number }>('SELECT count(*) AS n FROM scim_users'))!).n;
    assert.equal(after - before, 98);
    // Every created operation points at a user that exists with its own name.
    const u99 = await h.call('GET', res.body.Operations[99].location);
    assert.equal(u99.body.userName, 'dup-99@example.com');
    // A duplicate externalId is caught the same way.
    const ext = await h.call('POST', '/Bulk', bulk([
      { method: 'POST', path: '/Users', bulkId: 'e1', data: user('ext-a@example.com', { externalId: 'dup-ext-1' }) },
      { method: 'POST', path: '/Users', bulkId: 'e2', data: user('ext-b@example.com', { externalId: 'fresh-ext' }) },
    ]));
    assert.deepEqual(ext.body.Operations.map((o: any) => [o.status, o.response?.scimType]), [['409', 'uniqueness'], ['201', undefined]]);
  });
});
