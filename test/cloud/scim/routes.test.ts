/* eslint-disable @typescript-eslint/no-explicit-any -- response bodies are untyped JSON */
/** The SCIM HTTP API over real HTTP (undici → fastify on 127.0.0.1, SQLite file in a temp dir). */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { BULK, ENTERPRISE, ERROR, GROUP, ONPREM_GROUP, ONPREM_USER, patch, startScim, USER, user, type Harness } from './helpers.js';

let h: Harness;
before(async () => {
  h = await startScim();
});
after(async () => {
  await h.close();
});

// Resource ids are time-ordered UUIDs, version 7 (src/cloud/scim/ids.ts).
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function assertScimError(res: { status: number; body: any; headers: Record<string, unknown> }, status: number, scimType?: string, detail?: RegExp): void {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.match(String(res.headers['content-type']), /^application\/scim\+json/);
  assert.deepEqual(res.body.schemas, [ERROR]);
  assert.equal(res.body.status, String(status));
  assert.equal(res.body.scimType, scimType);
  if (detail) assert.match(res.body.detail, detail);
}

async function createUser(userName: string, extra: Record<string, unknown> = {}) {
  const res = await h.call('POST', '/Users', user(userName, extra));
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body;
}

describe('authentication, content types and fastify errors', () => {
  test('a request without the bearer token is 401 with a SCIM error body', async () => {
    const res = await request(`${h.base}/Users`, { method: 'GET' });
    const body = (await res.body.json()) as any;
    assert.equal(res.statusCode, 401);
    assert.deepEqual(body.schemas, [ERROR]);
    assert.equal(body.status, '401');
    assert.equal(res.headers['www-authenticate'], 'Bearer');
  });

  test('authentication runs for discovery endpoints too', async () => {
    const res = await request(`${h.base}/ServiceProviderConfig`, { method: 'GET' });
    await res.body.dump();
    assert.equal(res.statusCode, 401);
  });

  test('responses are application/scim+json and application/json requests are accepted', async () => {
    const res = await h.call('POST', '/Users', user('json-client'), { 'content-type': 'application/json' });
    assert.equal(res.status, 201);
    assert.match(String(res.headers['content-type']), /^application\/scim\+json/);
  });

  test('malformed JSON is 400 invalidSyntax', async () => {
    assertScimError(await h.call('POST', '/Users', '{"userName": ', {}), 400, 'invalidSyntax');
  });

  test('an unknown route under the base path is a SCIM 404', async () => {
    assertScimError(await h.call('GET', '/Devices'), 404, undefined, /no SCIM endpoint/);
  });

  test('an unexpected server error is a SCIM 500 that does not leak internals', async () => {
    const broken = await startScim({
      authenticate: async () => {
        throw Object.assign(new Error('secret internals'), { statusCode: 500 });
      },
    });
    try {
      const res = await broken.call('GET', '/Users');
      assertScimError(res, 500, undefined, /internal error/);
      assert.doesNotMatch(res.text, /secret internals/);
    } finally {
      await broken.close();
    }
  });

  test('an unsupported media type is a SCIM 415', async () => {
    assertScimError(await h.call('POST', '/Users', 'userName=x', { 'content-type': 'application/x-www-form-urlencoded' }), 415);
  });
});

describe('Users: create, read, validation, uniqueness', () => {
  test('POST returns 201 with Location, ETag and full meta', async () => {
    const res = await h.call('POST', '/Users', {
      schemas: [USER, ENTERPRISE, ONPREM_USER],
      userName: 'Alice@Example.com',
      externalId: 'anchor-alice',
      name: { givenName: 'Alice', familyName: 'Smith' },
      emails: [{ value: 'alice@example.com', type: 'work', primary: true }],
      [ENTERPRISE]: { department: 'R&D' },
      [ONPREM_USER]: { onPremisesSamAccountName: 'alice', onPremisesDistinguishedName: 'CN=Alice,DC=corp', onPremisesDomainName: 'corp', onPremisesImmutableId: 'abc==' },
    });
    assert.equal(res.status, 201);
    const b = res.body;
    assert.match(b.id, UUID);
    assert.deepEqual(b.schemas, [USER, ENTERPRISE, ONPREM_USER]);
    assert.equal(b.meta.resourceType, 'User');
    assert.equal(b.meta.location, `${h.base}/Users/${b.id}`);
    assert.equal(res.headers.location, b.meta.location);
    assert.equal(b.meta.version, 'W/"1"');
    assert.equal(res.headers.etag, b.meta.version);
    assert.ok(!Number.isNaN(Date.parse(b.meta.created)) && b.meta.created === b.meta.lastModified);
    assert.equal(b[ONPREM_USER].onPremisesImmutableId, 'abc==');
    const got = await h.call('GET', `/Users/${b.id}`);
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, b);
  });

  test('attribute names in the body are case-insensitive and stored canonically', async () => {
    const b = await createUser('case-user', { DISPLAYNAME: 'Case', Emails: [{ VALUE: 'c@x.example' }] });
    assert.equal(b.displayName, 'Case');
    assert.deepEqual(b.emails, [{ value: 'c@x.example' }]);
  });

  test('readOnly attributes in the body (id, meta) are ignored', async () => {
    const b = await createUser('ro-user', { id: 'chosen-id', meta: { version: 'W/"99"' } });
    assert.notEqual(b.id, 'chosen-id');
    assert.equal(b.meta.version, 'W/"1"');
  });

  const invalid: [string, unknown, RegExp][] = [
    ['missing userName', { schemas: [USER], displayName: 'x' }, /userName.*required/],
    ['active is not a boolean', user('v1', { active: 'yes' }), /"active" must be a boolean/],
    ['e-mail value that is not an e-mail address', user('v2', { emails: [{ value: 'not-an-email' }] }), /emails\.value.*e-mail/],
    ['multi-valued attribute given an object', user('v3', { emails: { value: 'a@b.c' } }), /emails.*array/],
    ['unknown attribute', user('v4', { shoeSize: 42 }), /shoeSize/],
    ['unknown extension attribute', user('v5', { [ENTERPRISE]: { badge: 'x' } }), /badge/],
    ['unknown schema in schemas', { schemas: [USER, 'urn:example:x'], userName: 'v6' }, /urn:example:x/],
    ['a string attribute given a number', user('v7', { title: 5 }), /"title" must be a string/],
  ];
  for (const [name, body, detail] of invalid) {
    test(`${name} → 400 invalidValue naming the attribute`, async () => {
      assertScimError(await h.call('POST', '/Users', body), 400, 'invalidValue', detail);
    });
  }

  test('userName is unique case-insensitively → 409 uniqueness', async () => {
    await createUser('Unique@Example.com');
    assertScimError(await h.call('POST', '/Users', user('UNIQUE@example.COM')), 409, 'uniqueness', /userName/);
  });

  test('externalId is unique → 409 uniqueness', async () => {
    await createUser('ext1', { externalId: 'anchor-1' });
    assertScimError(await h.call('POST', '/Users', user('ext2', { externalId: 'anchor-1' })), 409, 'uniqueness', /externalId/);
    // externalId is caseExact: a different case is a different value.
    await createUser('ext3', { externalId: 'ANCHOR-1' });
  });

  test('GET of an unknown id is 404', async () => {
    assertScimError(await h.call('GET', '/Users/00000000-0000-4000-8000-000000000000'), 404);
  });
});

describe('Users: PUT, PATCH, DELETE and ETags', () => {
  test('If-None-Match with the current ETag → 304; with an old one → 200', async () => {
    const u = await createUser('etag-get');
    const notModified = await h.call('GET', `/Users/${u.id}`, undefined, { 'if-none-match': u.meta.version });
    assert.equal(notModified.status, 304);
    assert.equal(notModified.text, '');
    const changed = await h.call('GET', `/Users/${u.id}`, undefined, { 'if-none-match': 'W/"0"' });
    assert.equal(changed.status, 200);
  });

  test('PUT replaces the resource (absent attributes are removed) and bumps the version', async () => {
    const u = await createUser('put-user', { title: 'Old', displayName: 'P' });
    const res = await h.call('PUT', `/Users/${u.id}`, user('put-user', { displayName: 'P2' }), { 'if-match': u.meta.version });
    assert.equal(res.status, 200);
    assert.equal(res.body.displayName, 'P2');
    assert.equal(res.body.title, undefined);
    assert.equal(res.body.meta.version, 'W/"2"');
    assert.equal(res.headers.etag, 'W/"2"');
    assert.equal(res.body.meta.created, u.meta.created);
  });

  test('PUT of an identical resource writes nothing and keeps the version', async () => {
    const u = await createUser('noop-put', { title: 'Same' });
    const res = await h.call('PUT', `/Users/${u.id}`, user('noop-put', { title: 'Same' }));
    assert.equal(res.status, 200);
    assert.equal(res.body.meta.version, u.meta.version);
    assert.equal(res.body.meta.lastModified, u.meta.lastModified);
  });

  test('PUT/PATCH/DELETE with a stale If-Match → 412 and nothing changes', async () => {
    const u = await createUser('stale');
    await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'add', path: 'title', value: 'v2' }));
    const stale = { 'if-match': u.meta.version };
    assertScimError(await h.call('PUT', `/Users/${u.id}`, user('stale', { title: 'x' }), stale), 412, undefined, /Precondition Failed/);
    assertScimError(await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'add', path: 'title', value: 'x' }), stale), 412);
    assertScimError(await h.call('DELETE', `/Users/${u.id}`, undefined, stale), 412);
    const now = await h.call('GET', `/Users/${u.id}`);
    assert.equal(now.body.title, 'v2');
  });

  test('If-Match with the current (or *) ETag succeeds', async () => {
    const u = await createUser('fresh');
    const res = await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'add', path: 'title', value: 'x' }), { 'if-match': u.meta.version });
    assert.equal(res.status, 200);
    const res2 = await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'add', path: 'title', value: 'y' }), { 'if-match': '*' });
    assert.equal(res2.status, 200);
  });

  test('PATCH applies operations and returns the resource with a new ETag', async () => {
    const u = await createUser('patch-me', { emails: [{ value: 'p@work.example', type: 'work' }] });
    const res = await h.call(
      'PATCH',
      `/Users/${u.id}`,
      patch(
        { op: 'replace', path: 'emails[type eq "work"].value', value: 'p2@work.example' },
        { op: 'add', path: `${ONPREM_USER}:onPremisesDomainName`, value: 'corp.example' },
        { op: 'Replace', value: { active: false } },
      ),
    );
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.emails, [{ value: 'p2@work.example', type: 'work' }]);
    assert.equal(res.body[ONPREM_USER].onPremisesDomainName, 'corp.example');
    assert.ok(res.body.schemas.includes(ONPREM_USER));
    assert.equal(res.body.active, false);
    assert.equal(res.headers.etag, 'W/"2"');
  });

  test('PATCH errors: unknown path 400 invalidPath, readOnly 400 mutability, bad value 400 invalidValue, removing userName 400', async () => {
    const u = await createUser('patch-errors');
    assertScimError(await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'add', path: 'shoeSize', value: 1 })), 400, 'invalidPath');
    assertScimError(await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'replace', path: 'id', value: 'x' })), 400, 'mutability');
    assertScimError(await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'replace', path: 'meta', value: {} })), 400, 'mutability');
    assertScimError(await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'add', path: 'emails', value: [{ value: 'bad' }] })), 400, 'invalidValue', /e-mail/);
    assertScimError(await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'remove', path: 'userName' })), 400, 'invalidValue', /userName.*required/);
    assertScimError(await h.call('PATCH', `/Users/${u.id}`, { Operations: [] }), 400, 'invalidSyntax');
    const after = await h.call('GET', `/Users/${u.id}`);
    assert.equal(after.body.meta.version, 'W/"1"', 'failed PATCHes change nothing');
  });

  test('PATCH making another e-mail primary sets primary to false on the old one (RFC 7644 §3.5.2)', async () => {
    const emails = [
      { value: 'w@x.example', type: 'work', primary: true },
      { value: 'h@x.example', type: 'home' },
    ];
    const u = await createUser('primary-switch', { emails });
    // The sub-attribute path.
    const sub = await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'replace', path: 'emails[type eq "home"].primary', value: true }));
    assert.equal(sub.status, 200, JSON.stringify(sub.body));
    assert.deepEqual(sub.body.emails, [
      { ...emails[0], primary: false },
      { ...emails[1], primary: true },
    ]);
    // The whole element, replaced and merged (add) through a filter.
    const replaced = await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'replace', path: 'emails[type eq "work"]', value: { value: 'w2@x.example', type: 'work', primary: true } }));
    assert.equal(replaced.status, 200, JSON.stringify(replaced.body));
    assert.deepEqual(replaced.body.emails, [
      { value: 'w2@x.example', type: 'work', primary: true },
      { ...emails[1], primary: false },
    ]);
    const added = await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'add', path: 'emails[type eq "home"]', value: { primary: true } }));
    assert.equal(added.status, 200, JSON.stringify(added.body));
    assert.deepEqual(
      added.body.emails.map((e: any) => [e.type, e.primary]),
      [
        ['work', false],
        ['home', true],
      ],
    );
    // An element the filter creates (no "other" e-mail yet) is made primary the same way.
    const seeded = await h.call(
      'PATCH',
      `/Users/${u.id}`,
      patch({ op: 'add', path: 'emails[type eq "other"].value', value: 'o@x.example' }, { op: 'replace', path: 'emails[type eq "other"].primary', value: true }),
    );
    assert.equal(seeded.status, 200, JSON.stringify(seeded.body));
    assert.deepEqual(
      seeded.body.emails.map((e: any) => [e.type, e.primary]),
      [
        ['work', false],
        ['home', false],
        ['other', true],
      ],
    );
    const created = await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'add', path: 'emails[type eq "pager"].primary', value: true }));
    assert.equal(created.status, 200, JSON.stringify(created.body));
    assert.deepEqual(
      created.body.emails.map((e: any) => [e.type, e.primary]),
      [
        ['work', false],
        ['home', false],
        ['other', false],
        ['pager', true],
      ],
    );
    // Two values made primary at once stay a 400: which one would win is not the server's guess.
    assertScimError(await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'replace', path: 'emails[type ne "work"].primary', value: true })), 400, 'invalidValue', /primary/);
  });

  test('PATCH userName onto another user’s name → 409 uniqueness', async () => {
    await createUser('taken-name');
    const u = await createUser('other-name');
    assertScimError(await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'replace', path: 'userName', value: 'TAKEN-NAME' })), 409, 'uniqueness');
  });

  test('DELETE → 204, then 404', async () => {
    const u = await createUser('delete-me');
    const res = await h.call('DELETE', `/Users/${u.id}`);
    assert.equal(res.status, 204);
    assertScimError(await h.call('GET', `/Users/${u.id}`), 404);
    assertScimError(await h.call('DELETE', `/Users/${u.id}`), 404);
  });
});

describe('Groups and membership', () => {
  test('POST a group with user and group members; members carry $ref, type and display', async () => {
    const u = await createUser('member-1', { displayName: 'Member One' });
    const inner = await h.call('POST', '/Groups', { schemas: [GROUP], displayName: 'Inner' });
    assert.equal(inner.status, 201);
    const res = await h.call('POST', '/Groups', {
      schemas: [GROUP, ONPREM_GROUP],
      displayName: 'Outer',
      externalId: 'g-anchor-1',
      members: [{ value: u.id }, { value: inner.body.id, type: 'Group' }],
      [ONPREM_GROUP]: { onPremisesDistinguishedName: 'CN=Outer,DC=corp', onPremisesSamAccountName: 'outer' },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const byValue = Object.fromEntries(res.body.members.map((m: any) => [m.value, m]));
    assert.deepEqual(byValue[u.id], { value: u.id, $ref: `${h.base}/Users/${u.id}`, type: 'User', display: 'Member One' });
    assert.deepEqual(byValue[inner.body.id], { value: inner.body.id, $ref: `${h.base}/Groups/${inner.body.id}`, type: 'Group', display: 'Inner' });
    assert.equal(res.body[ONPREM_GROUP].onPremisesSamAccountName, 'outer');
    const member = await h.call('GET', `/Users/${u.id}`);
    assert.deepEqual(member.body.groups, [{ value: res.body.id, $ref: `${h.base}/Groups/${res.body.id}`, display: 'Outer', type: 'direct' }]);
  });

  test('members referencing unknown ids (or the wrong type) → 400 invalidValue', async () => {
    assertScimError(await h.call('POST', '/Groups', { displayName: 'Bad', members: [{ value: 'no-such-id' }] }), 400, 'invalidValue', /no-such-id/);
    const u = await createUser('typed-member');
    assertScimError(await h.call('POST', '/Groups', { displayName: 'Bad2', members: [{ value: u.id, type: 'Group' }] }), 400, 'invalidValue', /is a User/);
  });

  test('displayName is required; it need not be unique; externalId must be', async () => {
    assertScimError(await h.call('POST', '/Groups', { schemas: [GROUP] }), 400, 'invalidValue', /displayName/);
    assert.equal((await h.call('POST', '/Groups', { displayName: 'Twin', externalId: 'twin-1' })).status, 201);
    assert.equal((await h.call('POST', '/Groups', { displayName: 'Twin' })).status, 201);
    assertScimError(await h.call('POST', '/Groups', { displayName: 'Other', externalId: 'twin-1' }), 409, 'uniqueness', /externalId/);
  });

  test('PATCH add/remove members updates the group version and the user’s groups', async () => {
    const a = await createUser('pm-a');
    const b = await createUser('pm-b');
    const g = (await h.call('POST', '/Groups', { displayName: 'PatchGroup', members: [{ value: a.id }] })).body;
    const added = await h.call('PATCH', `/Groups/${g.id}`, patch({ op: 'add', path: 'members', value: [{ value: b.id }] }));
    assert.equal(added.status, 200);
    assert.deepEqual(added.body.members.map((m: any) => m.value).sort(), [a.id, b.id].sort());
    assert.equal(added.body.meta.version, 'W/"2"');
    const removed = await h.call('PATCH', `/Groups/${g.id}`, patch({ op: 'remove', path: `members[value eq "${a.id}"]` }));
    assert.deepEqual(removed.body.members.map((m: any) => m.value), [b.id]);
    assert.equal((await h.call('GET', `/Users/${a.id}`)).body.groups, undefined);
    assert.equal((await h.call('GET', `/Users/${b.id}`)).body.groups[0].value, g.id);
    assertScimError(await h.call('PATCH', `/Groups/${g.id}`, patch({ op: 'add', path: 'members', value: [{ value: 'ghost' }] })), 400, 'invalidValue', /ghost/);
  });

  test('deleting a user removes it from group members and bumps the group version', async () => {
    const u = await createUser('leaver');
    const stay = await createUser('stayer');
    const g = (await h.call('POST', '/Groups', { displayName: 'Team', members: [{ value: u.id }, { value: stay.id }] })).body;
    assert.equal((await h.call('DELETE', `/Users/${u.id}`)).status, 204);
    const after = await h.call('GET', `/Groups/${g.id}`);
    assert.deepEqual(after.body.members.map((m: any) => m.value), [stay.id]);
    assert.equal(after.body.meta.version, 'W/"2"');
  });

  test('a renamed user shows its new display name in member lists', async () => {
    const u = await createUser('renamed', { displayName: 'Before' });
    const g = (await h.call('POST', '/Groups', { displayName: 'Rename', members: [{ value: u.id }] })).body;
    await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'replace', path: 'displayName', value: 'After' }));
    assert.equal((await h.call('GET', `/Groups/${g.id}`)).body.members[0].display, 'After');
  });

  test('PATCH path filters on members’ display select the members a search on it finds', async () => {
    const a = await createUser('pd-a', { displayName: 'Display A' });
    const b = await createUser('pd-b');
    const inner = (await h.call('POST', '/Groups', { displayName: 'Display Inner' })).body;
    const g = (await h.call('POST', '/Groups', { displayName: 'DisplayFilter', members: [{ value: a.id }, { value: b.id }, { value: inner.id }] })).body;
    const search = async (filter: string) => (await h.call('GET', `/Groups?filter=${encodeURIComponent(`members[${filter}]`)}`)).body.Resources.map((r: any) => r.id);
    assert.deepEqual(await search('display eq "display a"'), [g.id], 'display compares without case, as in a search');

    const removed = await h.call('PATCH', `/Groups/${g.id}`, patch({ op: 'remove', path: 'members[display eq "display a"]' }));
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    assert.deepEqual(removed.body.members.map((m: any) => m.value).sort(), [b.id, inner.id].sort());
    assert.equal(removed.body.meta.version, 'W/"2"');
    // A user without displayName shows (and is selected by) its userName; a group by its displayName.
    const both = await h.call('PATCH', `/Groups/${g.id}`, patch({ op: 'remove', path: 'members[display eq "pd-b" or display sw "Display I"]' }));
    assert.equal(both.status, 200, JSON.stringify(both.body));
    assert.equal(both.body.members, undefined);
    assert.deepEqual(await search('display eq "display a"'), []);
    assert.equal((await h.call('GET', `/Users/${a.id}`)).body.groups, undefined);
    // display is readOnly: it selects, it cannot be written.
    const again = (await h.call('PATCH', `/Groups/${g.id}`, patch({ op: 'add', path: 'members', value: [{ value: a.id, display: 'Ignored' }] }))).body;
    assert.deepEqual(again.members.map((m: any) => m.display), ['Display A']);
    assertScimError(await h.call('PATCH', `/Groups/${g.id}`, patch({ op: 'replace', path: `members[value eq "${a.id}"].display`, value: 'X' })), 400, 'mutability');
  });

  test('derived attributes move the version: no If-None-Match answers a stale 304 (User.groups, members.display)', async () => {
    const fresh = async (p: string, etag: string) => {
      const res = await h.call('GET', p, undefined, { 'if-none-match': etag });
      assert.equal(res.status, 200, `${p} changed since ${etag}: expected 200, got ${res.status}`);
      assert.notEqual(res.body.meta.version, etag);
      assert.equal(res.headers.etag, res.body.meta.version);
      return res.body;
    };
    const unchanged = async (p: string, etag: string) => assert.equal((await h.call('GET', p, undefined, { 'if-none-match': etag })).status, 304, `${p} is still ${etag}`);
    const u = await createUser('derived-u', { displayName: 'Derived' });
    const other = await createUser('derived-other');
    // Joining a group (created with the member) changes the user's groups[].
    const g = (await h.call('POST', '/Groups', { displayName: 'Derived G', members: [{ value: u.id }] })).body;
    let user = await fresh(`/Users/${u.id}`, u.meta.version);
    assert.deepEqual(user.groups.map((x: any) => x.display), ['Derived G']);
    // A user's rename changes its groups' members[].display; a change elsewhere does not move them.
    let group = (await h.call('GET', `/Groups/${g.id}`)).body;
    await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'add', path: 'title', value: 'No display change' }));
    await unchanged(`/Groups/${g.id}`, group.meta.version);
    await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'replace', path: 'displayName', value: 'Derived Renamed' }));
    group = await fresh(`/Groups/${g.id}`, group.meta.version);
    assert.deepEqual(group.members.map((m: any) => m.display), ['Derived Renamed']);
    // A group's rename changes its users' groups[] and its parents' members[].display.
    const parent = (await h.call('POST', '/Groups', { displayName: 'Derived Parent', members: [{ value: g.id }] })).body;
    user = (await h.call('GET', `/Users/${u.id}`)).body;
    await h.call('PATCH', `/Groups/${g.id}`, patch({ op: 'replace', path: 'displayName', value: 'Derived G2' }));
    user = await fresh(`/Users/${u.id}`, user.meta.version);
    assert.deepEqual(user.groups.map((x: any) => x.display), ['Derived G2']);
    assert.deepEqual((await fresh(`/Groups/${parent.id}`, parent.meta.version)).members.map((m: any) => m.display), ['Derived G2']);
    // Leaving (and joining through PATCH) changes groups[] of exactly the users concerned.
    const bystander = (await h.call('GET', `/Users/${other.id}`)).body;
    await h.call('PATCH', `/Groups/${g.id}`, patch({ op: 'remove', path: `members[value eq "${u.id}"]` }));
    user = await fresh(`/Users/${u.id}`, user.meta.version);
    assert.equal(user.groups, undefined);
    await unchanged(`/Users/${other.id}`, bystander.meta.version);
    await h.call('PATCH', `/Groups/${g.id}`, patch({ op: 'add', path: 'members', value: [{ value: other.id }] }));
    const joined = await fresh(`/Users/${other.id}`, bystander.meta.version);
    // Deleting the group takes it out of its users' groups[].
    assert.equal((await h.call('DELETE', `/Groups/${g.id}`)).status, 204);
    assert.equal((await fresh(`/Users/${other.id}`, joined.meta.version)).groups, undefined);
  });

  test('derived attributes move the version through Bulk too (the fast path of a User PUT, a Group POST)', async () => {
    const u = await createUser('derived-bulk');
    const res = await h.call('POST', '/Bulk', {
      schemas: [BULK],
      Operations: [{ method: 'POST', path: '/Groups', bulkId: 'g', data: { displayName: 'Derived Bulk', members: [{ value: u.id }] } }],
    });
    assert.equal(res.body.Operations[0].status, '201');
    const member = (await h.call('GET', `/Users/${u.id}`, undefined, { 'if-none-match': u.meta.version })).body;
    assert.equal(member?.groups?.[0]?.display, 'Derived Bulk', 'a 200 with the new groups[], not a 304');
    const g = (await h.call('GET', res.body.Operations[0].location)).body;
    const put = await h.call('POST', '/Bulk', { schemas: [BULK], Operations: [{ method: 'PUT', path: `/Users/${u.id}`, data: user('derived-bulk', { displayName: 'Bulk Renamed' }) }] });
    assert.equal(put.body.Operations[0].status, '200');
    const after = await h.call('GET', `/Groups/${g.id}`, undefined, { 'if-none-match': g.meta.version });
    assert.equal(after.status, 200);
    assert.deepEqual(after.body.members.map((m: any) => m.display), ['Bulk Renamed']);
  });

  test('excludedAttributes=members leaves members out; filter on members.value finds the group', async () => {
    const u = await createUser('excl-member');
    const g = (await h.call('POST', '/Groups', { displayName: 'Excl', members: [{ value: u.id }] })).body;
    const res = await h.call('GET', `/Groups/${g.id}?excludedAttributes=members`);
    assert.equal(res.body.members, undefined);
    assert.equal(res.body.displayName, 'Excl');
    const found = await h.call('GET', `/Groups?filter=${encodeURIComponent(`members[value eq "${u.id}"]`)}`);
    assert.deepEqual(found.body.Resources.map((r: any) => r.id), [g.id]);
  });
});

describe('list and search', () => {
  let ids: string[] = [];
  before(async () => {
    ids = [];
    for (let i = 0; i < 12; i++) {
      const u = await createUser(`list-${String(i).padStart(2, '0')}@corp.example`, {
        displayName: `L${i}`,
        emails: [{ value: `l${i}@${i % 2 ? 'odd' : 'even'}.example`, type: 'work' }],
      });
      ids.push(u.id);
    }
  });

  const q = (params: Record<string, string>) => `/Users?${new URLSearchParams(params)}`;

  test('filter + startIndex/count paginate with totalResults and itemsPerPage', async () => {
    const res = await h.call('GET', q({ filter: 'userName sw "list-"', startIndex: '11', count: '5' }));
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.schemas, ['urn:ietf:params:scim:api:messages:2.0:ListResponse']);
    assert.equal(res.body.totalResults, 12);
    assert.equal(res.body.startIndex, 11);
    assert.equal(res.body.itemsPerPage, 2);
    assert.deepEqual(res.body.Resources.map((r: any) => r.id), ids.slice(10));
  });

  test('defaults: startIndex 1, count 100; count=0 returns only totalResults', async () => {
    const all = await h.call('GET', q({ filter: 'userName sw "list-"' }));
    assert.equal(all.body.startIndex, 1);
    assert.equal(all.body.Resources.length, 12);
    const none = await h.call('GET', q({ filter: 'userName sw "list-"', count: '0' }));
    assert.equal(none.body.totalResults, 12);
    assert.deepEqual(none.body.Resources, []);
  });

  test('sortBy/sortOrder', async () => {
    const res = await h.call('GET', q({ filter: 'userName sw "list-"', sortBy: 'userName', sortOrder: 'descending', count: '3' }));
    assert.deepEqual(res.body.Resources.map((r: any) => r.userName), ['list-11@corp.example', 'list-10@corp.example', 'list-09@corp.example']);
  });

  test('value-path filter over HTTP', async () => {
    const res = await h.call('GET', q({ filter: 'emails[type eq "work" and value co "@odd"] and userName sw "list-"' }));
    assert.equal(res.body.totalResults, 6);
  });

  test('attributes returns only the named attributes plus id, schemas and meta', async () => {
    const res = await h.call('GET', q({ filter: `id eq "${ids[0]}"`, attributes: 'userName,emails.value' }));
    const r = res.body.Resources[0];
    assert.deepEqual(Object.keys(r).sort(), ['emails', 'id', 'meta', 'schemas', 'userName']);
    assert.deepEqual(r.emails, [{ value: 'l0@even.example' }]);
  });

  test('excludedAttributes drops attributes but never id, schemas or meta', async () => {
    const res = await h.call('GET', `/Users/${ids[1]}?excludedAttributes=emails,meta,id,displayName`);
    assert.equal(res.body.emails, undefined);
    assert.equal(res.body.displayName, undefined);
    assert.equal(res.body.id, ids[1]);
    assert.ok(res.body.meta.location);
    assert.ok(res.body.schemas);
  });

  test('POST /Users/.search takes the query in the body', async () => {
    const res = await h.call('POST', '/Users/.search', {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'],
      filter: 'userName sw "LIST-0"',
      attributes: ['userName'],
      startIndex: 1,
      count: 3,
    });
    assert.equal(res.status, 200);
    assert.equal(res.body.totalResults, 10);
    assert.equal(res.body.Resources.length, 3);
    assert.equal(res.body.Resources[0].emails, undefined);
  });

  test('an invalid filter is 400 invalidFilter', async () => {
    assertScimError(await h.call('GET', q({ filter: 'nope eq 1' })), 400, 'invalidFilter', /nope/);
    assertScimError(await h.call('GET', q({ filter: 'userName eq' })), 400, 'invalidFilter');
  });

  test('count is capped at maxResults', async () => {
    const small = await startScim({ limits: { maxResults: 2 } });
    try {
      for (const n of ['a', 'b', 'c']) await small.call('POST', '/Users', user(n));
      const res = await small.call('GET', '/Users?count=50');
      assert.equal(res.body.totalResults, 3);
      assert.equal(res.body.itemsPerPage, 2);
      assert.equal((await small.call('GET', '/ServiceProviderConfig')).body.filter.maxResults, 2);
    } finally {
      await small.close();
    }
  });
});

describe('discovery', () => {
  test('ServiceProviderConfig advertises patch, bulk, filter, etag, sort and bearer tokens', async () => {
    const res = await h.call('GET', '/ServiceProviderConfig');
    assert.equal(res.status, 200);
    const c = res.body;
    assert.deepEqual(c.schemas, ['urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig']);
    assert.equal(c.patch.supported, true);
    assert.deepEqual(c.bulk, { supported: true, maxOperations: 1000, maxPayloadSize: 10 * 1024 * 1024 });
    assert.deepEqual(c.filter, { supported: true, maxResults: 1000, maxLength: 4096, maxTerms: 100, maxSubstringTerms: 10 });
    assert.equal(c.patch.maxOperations, 10_000);
    assert.equal(c['urn:idsync:params:scim:api:limits'].maxValueLength, 65_536);
    assert.equal(c.etag.supported, true);
    assert.equal(c.sort.supported, true);
    assert.equal(c.changePassword.supported, false);
    assert.equal(c.authenticationSchemes[0].type, 'oauthbearertoken');
  });

  test('/Schemas lists the core, enterprise and on-premises schemas', async () => {
    const res = await h.call('GET', '/Schemas');
    assert.deepEqual(res.body.Resources.map((s: any) => s.id).sort(), [ONPREM_GROUP, ONPREM_USER, ENTERPRISE, GROUP, USER].sort());
    const onprem = await h.call('GET', `/Schemas/${ONPREM_USER}`);
    assert.deepEqual(
      onprem.body.attributes.map((a: any) => [a.name, a.type, a.mutability]),
      ['onPremisesSamAccountName', 'onPremisesDistinguishedName', 'onPremisesDomainName', 'onPremisesImmutableId'].map((n) => [n, 'string', 'readWrite']),
    );
    const group = await h.call('GET', `/Schemas/${ONPREM_GROUP}`);
    assert.deepEqual(group.body.attributes.map((a: any) => a.name), ['onPremisesDistinguishedName', 'onPremisesSamAccountName']);
    const core = await h.call('GET', `/Schemas/${USER}`);
    const userName = core.body.attributes.find((a: any) => a.name === 'userName');
    assert.equal(userName.caseExact, false);
    assert.equal(userName.uniqueness, 'server');
    assertScimError(await h.call('GET', '/Schemas/urn:nope'), 404);
  });

  test('/ResourceTypes lists User and Group with their extensions', async () => {
    const res = await h.call('GET', '/ResourceTypes');
    const byId = Object.fromEntries(res.body.Resources.map((r: any) => [r.id, r]));
    assert.equal(byId.User.endpoint, '/Users');
    assert.deepEqual(byId.User.schemaExtensions.map((e: any) => e.schema), [ENTERPRISE, ONPREM_USER]);
    assert.equal(byId.Group.schema, GROUP);
    assert.deepEqual(byId.Group.schemaExtensions.map((e: any) => e.schema), [ONPREM_GROUP]);
    assert.equal((await h.call('GET', '/ResourceTypes/Group')).body.endpoint, '/Groups');
  });
});
