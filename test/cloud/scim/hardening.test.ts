/* eslint-disable @typescript-eslint/no-explicit-any -- response bodies are untyped JSON */
/**
 * Regression tests for issue 9 (defects 3, 5 and the lone surrogate of 6), cloud side: each failed
 * on the SCIM layer before the fix. A real fastify server with SQLite on disk, over HTTP.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { applyPatch, type PatchOperation } from '../../../src/cloud/scim/patch.js';
import { USER_TYPE } from '../../../src/cloud/scim/schema.js';
import { BULK, ERROR, PATCH_OP, patch, startScim, user, type Harness } from './helpers.js';

let h: Harness;
before(async () => {
  h = await startScim();
});
after(async () => {
  await h.close();
});

const userCount = async () => Number((await h.store.get<{ n: number }>('SELECT count(*) AS n FROM scim_users'))?.n);

async function create(userName: string, extra: Record<string, unknown> = {}): Promise<any> {
  const res = await h.call('POST', '/Users', user(userName, extra));
  assert.equal(res.status, 201, res.text);
  return res.body;
}

function assertScimError(res: { status: number; body: any; text: string }, status: number, scimType?: string): void {
  assert.equal(res.status, status, res.text);
  assert.deepEqual(res.body.schemas, [ERROR]);
  assert.equal(res.body.status, String(status));
  if (scimType) assert.equal(res.body.scimType, scimType);
}

describe('defect 3: PATCH is linear and requests are bounded', () => {
  // The old engine copied and searched the whole list per operation: 20k adds took 190 s here,
  // the linear one 0.3 s. The bound is generous on purpose (200x): it catches quadratic
  // behaviour, not a slow machine. (A timeout option cannot interrupt synchronous code.)
  test('20,000 add operations on emails are applied in one pass', () => {
    const ops: PatchOperation[] = Array.from({ length: 20_000 }, (_, i) => ({ op: 'add', path: 'emails', value: [{ value: `u${i}@example.com`, type: 'work' }] }));
    const started = performance.now();
    const out = applyPatch(USER_TYPE, { userName: 'bulk' }, ops);
    assert.ok(performance.now() - started < 60_000, 'applyPatch of 20,000 adds took over a minute: quadratic again?');
    const emails = out.emails as { value: string }[];
    assert.equal(emails.length, 20_000);
    assert.equal(emails[19_999]!.value, 'u19999@example.com');
  });

  test('8,000 add operations on emails answer 400 (over the value limit) instead of stalling', { timeout: 60_000 }, async () => {
    const u = await create('many-emails');
    const ops = Array.from({ length: 8000 }, (_, i) => ({ op: 'add', path: 'emails', value: [{ value: `m${i}@example.com` }] }));
    const res = await h.call('PATCH', `/Users/${u.id}`, patch(...ops));
    assertScimError(res, 400, 'invalidValue');
    assert.match(res.body.detail, /more than 1000 values/);
    assert.equal((await h.call('GET', `/Users/${u.id}`)).body.meta.version, u.meta.version);
  });

  test('a PATCH with more operations than advertised is a 413', async () => {
    const u = await create('too-many-ops');
    const ops = Array.from({ length: 10_001 }, () => ({ op: 'replace', path: 'title', value: 'x' }));
    assertScimError(await h.call('PATCH', `/Users/${u.id}`, patch(...ops)), 413);
  });

  test('a 9 MB userName is refused', async () => {
    const before = await userCount();
    assertScimError(await h.call('POST', '/Users', user('x'.repeat(9 * 1024 * 1024))), 400, 'invalidValue');
    assert.equal(await userCount(), before);
  });

  test('a 70,000-character title is refused; 65,536 is accepted', async () => {
    assertScimError(await h.call('POST', '/Users', user('long-title', { title: 't'.repeat(70_000) })), 400, 'invalidValue');
    await create('long-title-ok', { title: 't'.repeat(65_536) });
  });

  test('a 180-term co filter is refused, not scanned', async () => {
    const filter = Array.from({ length: 180 }, (_, i) => `userName co "${i}"`).join(' or ');
    const res = await h.call('GET', `/Users?filter=${encodeURIComponent(filter)}`);
    assertScimError(res, 400, 'invalidFilter');
    const eleven = Array.from({ length: 11 }, (_, i) => `userName co "${i}"`).join(' or ');
    const res11 = await h.call('GET', `/Users?filter=${encodeURIComponent(eleven)}`);
    assertScimError(res11, 400, 'invalidFilter');
    assert.match(res11.body.detail, /co\/sw\/ew/);
  });

  test('a filter of more than 100 comparisons is refused; 100 eq terms work', async () => {
    const terms = (n: number) => Array.from({ length: n }, (_, i) => `externalId eq "e${i}"`).join(' or ');
    assertScimError(await h.call('POST', '/Users/.search', { filter: terms(101) }), 400, 'invalidFilter');
    assert.equal((await h.call('POST', '/Users/.search', { filter: terms(100) })).status, 200);
  });

  test('ServiceProviderConfig advertises every limit', async () => {
    const c = (await h.call('GET', '/ServiceProviderConfig')).body;
    assert.equal(c.bulk.maxPayloadSize, 10 * 1024 * 1024);
    assert.equal(c.patch.maxOperations, 10_000);
    assert.deepEqual(Object.keys(c['urn:idsync:params:scim:api:limits']).sort(), [
      'maxBulkOperations',
      'maxFilterLength',
      'maxFilterSubstringTerms',
      'maxFilterTerms',
      'maxIdentifierLength',
      'maxJsonDepth',
      'maxMultiValues',
      'maxPatchOperations',
      'maxPayloadSize',
      'maxValueLength',
    ]);
  });
});

describe('defect 5: bad input is a 4xx, never a 500', () => {
  for (const startIndex of ['1e19', '9223372036854775807', '18446744073709551616']) {
    test(`startIndex=${startIndex} is an empty page`, async () => {
      const res = await h.call('GET', `/Users?startIndex=${startIndex}`);
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.body.Resources, []);
    });
  }

  test('a Bulk operation with a bad %-escape fails alone; the valid operations are kept', async () => {
    const res = await h.call('POST', '/Bulk', {
      schemas: [BULK],
      Operations: [
        { method: 'POST', path: '/Users', bulkId: 'a', data: user('bulk-kept-1') },
        { method: 'PATCH', path: '/Users/%zz', data: patch({ op: 'replace', path: 'title', value: 'x' }) },
        { method: 'POST', path: '/Users', bulkId: 'b', data: user('bulk-kept-2') },
      ],
    });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(
      res.body.Operations.map((o: any) => o.status),
      ['201', '400', '201'],
    );
    assert.equal(res.body.Operations[1].response.scimType, 'invalidPath');
    for (const name of ['bulk-kept-1', 'bulk-kept-2']) {
      assert.equal((await h.call('GET', `/Users?filter=${encodeURIComponent(`userName eq "${name}"`)}`)).body.totalResults, 1);
    }
  });

  test('a 100,000-deep nested body is a 400', async () => {
    const before = await userCount();
    const body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"deep","title":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}';
    assertScimError(await h.call('POST', '/Users', body), 400, 'invalidSyntax');
    assert.equal(await userCount(), before);
  });

  test('"bulkId:x" outside a reference is plain data', async () => {
    const res = await h.call('POST', '/Bulk', {
      schemas: [BULK],
      Operations: [{ method: 'POST', path: '/Users', bulkId: 'p', data: user('plain-bulkid', { title: 'bulkId:nothing', displayName: 'bulkId:p' }) }],
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.Operations[0].status, '201', JSON.stringify(res.body.Operations[0]));
    const id = res.body.Operations[0].location.split('/').pop();
    const u = (await h.call('GET', `/Users/${id}`)).body;
    assert.equal(u.title, 'bulkId:nothing');
    assert.equal(u.displayName, 'bulkId:p');
  });

  test('"bulkId:x" in a member value is still a reference', async () => {
    const res = await h.call('POST', '/Bulk', {
      schemas: [BULK],
      Operations: [
        { method: 'POST', path: '/Groups', bulkId: 'g', data: { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'refs', members: [{ value: 'bulkId:u' }] } },
        { method: 'POST', path: '/Users', bulkId: 'u', data: user('ref-member') },
      ],
    });
    assert.deepEqual(
      res.body.Operations.map((o: any) => o.status),
      ['201', '201'],
    );
    const gid = res.body.Operations[0].location.split('/').pop();
    const uid = res.body.Operations[1].location.split('/').pop();
    assert.deepEqual((await h.call('GET', `/Groups/${gid}`)).body.members.map((m: any) => m.value), [uid]);
  });

  test('PATCH remove on emails with a value filter removes what matches', async () => {
    const u = await create('remove-by-type', {
      emails: [
        { value: 'w@example.com', type: 'work' },
        { value: 'h@example.com', type: 'home' },
        { value: 'h2@example.com', type: 'Home' },
      ],
    });
    const res = await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'remove', path: 'emails', value: [{ type: 'home' }] }));
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(
      res.body.emails.map((e: any) => e.value),
      ['w@example.com'],
    );
  });

  test('PATCH remove with an empty or unknown matcher is a 400, not a silent 200', async () => {
    const u = await create('remove-bad', { emails: [{ value: 'w@example.com', type: 'work' }] });
    assertScimError(await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'remove', path: 'emails', value: [{}] })), 400, 'invalidValue');
    assertScimError(await h.call('PATCH', `/Users/${u.id}`, patch({ op: 'remove', path: 'emails', value: [{ colour: 'red' }] })), 400, 'invalidValue');
    assert.equal((await h.call('GET', `/Users/${u.id}`)).body.meta.version, u.meta.version);
  });
});

describe('defect 6 (cloud): lone surrogates', () => {
  test('a lone surrogate in userName is refused and nothing is stored', async () => {
    const before = await userCount();
    const res = await h.call('POST', '/Users', `{"schemas":["${user('x').schemas[0]}"],"userName":"a\\ud800b"}`);
    assertScimError(res, 400, 'invalidValue');
    assert.equal(await userCount(), before);
  });

  test('a lone surrogate anywhere in a body (PATCH value, attribute name) is refused', async () => {
    const u = await create('surrogate-patch');
    const body = `{"schemas":["${PATCH_OP}"],"Operations":[{"op":"replace","path":"title","value":"\\udc00"}]}`;
    assertScimError(await h.call('PATCH', `/Users/${u.id}`, body), 400, 'invalidValue');
    assertScimError(await h.call('POST', '/Users', `{"userName":"k","\\ud801":1}`), 400, 'invalidValue');
  });

  test('a lone surrogate in a search filter is refused; a proper pair is fine', async () => {
    assertScimError(await h.call('POST', '/Users/.search', '{"filter":"userName eq \\"\\ud800\\""}'), 400, 'invalidValue');
    await create('emoji-😀');
    const res = await h.call('GET', `/Users?filter=${encodeURIComponent('userName eq "emoji-😀"')}`);
    assert.equal(res.body.totalResults, 1);
  });
});
