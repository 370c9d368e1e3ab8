import assert from 'node:assert/strict';
import { test } from 'node:test';
import { REDACTED, redactDetails, redactString } from '../../src/events/redact.js';

const ORGID = 'v1;PPH1_MD4,6a11ee41b1c2a4c4f5ba,1000,4b1b9ef5fd7c1c6f4d0e3b3c7df6c2d5b5a8c2b1e0f6a7d8c9b0a1f2e3d4c5b6;';
const NT = '8846F7EAEE8FB117AD06BDD830B7586C';
const JWT = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJpZHN5bmMifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ';

test('secret keys are redacted at any depth, whatever their value', () => {
  const out = redactDetails({
    connector: 'corp-ad',
    password: 'hunter2',
    newPassword: 'x',
    clientSecret: 's',
    ntHash: 'abc',
    accessToken: 123,
    credential: { user: 'a', pw: 'b' },
    unicodePwd: 'p',
    NTPassword: 'p',
    nested: { deeper: [{ refresh_token: 't', ok: 'fine' }] },
  });
  assert.deepEqual(out, {
    connector: 'corp-ad',
    password: REDACTED,
    newPassword: REDACTED,
    clientSecret: REDACTED,
    ntHash: REDACTED,
    accessToken: REDACTED,
    credential: REDACTED,
    unicodePwd: REDACTED,
    NTPassword: REDACTED,
    nested: { deeper: [{ refresh_token: REDACTED, ok: 'fine' }] },
  });
});

test('secret-looking values are redacted under innocent keys, inside text too', () => {
  const out = redactDetails({
    value: ORGID,
    note: `stored ${ORGID} for user`,
    nt: NT,
    lower: NT.toLowerCase(),
    error: `401 with Authorization: Bearer ${JWT}`,
    list: [NT, 'ok'],
  });
  assert.equal(out.value, REDACTED);
  assert.equal(out.note, `stored ${REDACTED} for user`);
  assert.equal(out.nt, REDACTED);
  assert.equal(out.lower, REDACTED);
  assert.equal(out.error, `401 with Authorization: Bearer ${REDACTED}`);
  assert.deepEqual(out.list, [REDACTED, 'ok']);
  const text = JSON.stringify(out);
  for (const secret of [ORGID, NT, NT.toLowerCase(), JWT, 'PPH1']) assert.ok(!text.includes(secret), secret);
});

test('identifiers that are not secrets survive', () => {
  const details = {
    anchor: '3f2504e0-4f89-11d3-9a0c-0305e82c3301', // GUID with dashes
    dn: 'CN=Alice Smith,OU=Staff,DC=corp,DC=example',
    sha256: undefined,
    longHex: 'a'.repeat(40), // not 32
    shortHex: 'deadbeef',
    count: 3,
    ok: true,
    when: new Date('2026-05-01T08:00:00Z'),
  };
  assert.deepEqual(redactDetails(details), {
    anchor: details.anchor,
    dn: details.dn,
    longHex: details.longHex,
    shortHex: 'deadbeef',
    count: 3,
    ok: true,
    when: '2026-05-01T08:00:00.000Z',
  });
});

test('binary, errors, URLs with user info, cycles and odd values are made safe', () => {
  const cyclic: Record<string, unknown> = { name: 'c' };
  cyclic.self = cyclic;
  const err = Object.assign(new Error(`bind failed for ${NT}`), { code: 'LDAP_BIND_FAILED' });
  const out = redactDetails({
    raw: Buffer.from(NT, 'hex'),
    bytes: new Uint8Array([1, 2, 3]),
    err,
    url: new URL('ldaps://admin:pa55@dc1.corp.example:636/'),
    cyclic,
    big: 10n,
    nan: Number.NaN,
    fn: () => 1,
  });
  assert.equal(out.raw, REDACTED);
  assert.equal(out.bytes, REDACTED);
  assert.deepEqual(out.err, { name: 'Error', message: `bind failed for ${REDACTED}`, code: 'LDAP_BIND_FAILED' });
  assert.equal(out.url, 'ldaps://dc1.corp.example:636/');
  assert.deepEqual(out.cyclic, { name: 'c', self: '[…]' });
  assert.equal(out.big, '10');
  assert.equal(out.nan, 'NaN');
  assert.ok(!('fn' in out));
  JSON.stringify(out); // serialisable
});

test('redactString leaves plain text alone', () => {
  assert.equal(redactString('Access to the cloud directory has been denied'), 'Access to the cloud directory has been denied');
});

test('the input is not mutated', () => {
  const input = { password: 'x', nested: { token: 'y' } };
  redactDetails(input);
  assert.deepEqual(input, { password: 'x', nested: { token: 'y' } });
});
