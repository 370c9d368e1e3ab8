/**
 * The default flows build their objects with the keys in sorted order at every level, so that
 * stableStringify writes them with the native serialiser (its fast path) instead of sorting them
 * again for every object of every cycle. A key added out of order still serialises correctly
 * (stableStringify falls back), only slower: this test is what notices.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SourceObject } from '../../src/connectors/types.js';
import fc from 'fast-check';
import { compact, groupToScim, inboundFlow, SCHEMA_ENTERPRISE, SCHEMA_ONPREM_USER, SCHEMA_USER, userToScim, type MvAttrs } from '../../src/engine/flows.js';
import { stableStringify } from '../../src/engine/stable-hash.js';

function unsortedPaths(v: unknown, at = '$'): string[] {
  if (Array.isArray(v)) return v.flatMap((x, i) => unsortedPaths(x, `${at}[${i}]`));
  if (!v || typeof v !== 'object') return [];
  const keys = Object.keys(v);
  const out = keys.some((k, i) => i > 0 && !(keys[i - 1]! < k)) ? [`${at}: ${keys.join(', ')}`] : [];
  return [...out, ...keys.flatMap((k) => unsortedPaths((v as Record<string, unknown>)[k], `${at}.${k}`))];
}

const ldapUser: SourceObject = {
  anchor: 'u-1',
  objectType: 'user',
  dn: 'uid=ann,ou=people,dc=lab,dc=test',
  attributes: { uid: ['ann'], cn: ['Ann Lee'], sn: ['Lee'], givenname: ['Ann'], mail: ['ann@lab.test'], title: ['Engineer'], telephonenumber: ['+1 555'], mobile: ['+1 556'], departmentnumber: ['D1'], employeenumber: ['7'], o: ['Lab'], description: ['x'] },
};
const adUser: SourceObject = {
  anchor: 'u-2',
  objectType: 'user',
  dn: 'CN=Bob,OU=People,DC=corp,DC=test',
  attributes: { samaccountname: ['bob'], userprincipalname: ['bob@corp.test'], cn: ['Bob'], useraccountcontrol: ['514'], mail: ['bob@corp.test'], company: ['Corp'] },
};
const group: SourceObject = { anchor: 'g-1', objectType: 'group', dn: 'cn=staff,ou=groups,dc=lab,dc=test', attributes: { cn: ['staff'] } };

test('the default inbound flow writes metaverse objects with sorted keys', () => {
  for (const [kind, o] of [['ldap', ldapUser], ['ad', adUser], ['ldif', adUser], ['ldap', group], ['ad', group]] as const) {
    const mv = inboundFlow(kind, o);
    assert.deepEqual(unsortedPaths(mv), [], `${kind} ${o.objectType}`);
    assert.equal(JSON.stringify(mv), stableStringify(mv));
  }
});

test('the default outbound flow writes SCIM resources with sorted keys', () => {
  const mv: MvAttrs = inboundFlow('ldap', ldapUser);
  const user = userToScim(mv);
  assert.ok(user.ok);
  assert.deepEqual(unsortedPaths(user.resource), []);
  assert.ok(Array.isArray(user.resource.phoneNumbers) && user.resource.phoneNumbers.length === 2, 'every optional part is present');
  const g = groupToScim(inboundFlow('ldap', group), [
    { type: 'User', value: 'b' },
    { type: 'Group', value: 'a' },
  ]);
  assert.ok(g.ok);
  assert.deepEqual(unsortedPaths(g.resource), []);
});

/** userToScim as first written: every part built, then a generic compaction dropped the empty ones. */
function compactingUserToScim(mv: MvAttrs): Record<string, unknown> | undefined {
  const str = (v: MvAttrs[string] | undefined) => (typeof v === 'string' && v !== '' ? v : undefined);
  const userName = str(mv.userPrincipalName);
  if (!userName) return undefined;
  const phones = [str(mv.telephoneNumber) && { type: 'work', value: str(mv.telephoneNumber) }, str(mv.mobile) && { type: 'mobile', value: str(mv.mobile) }].filter(Boolean);
  return compact({
    active: mv.accountEnabled !== false,
    displayName: str(mv.displayName),
    emails: str(mv.mail) ? [{ primary: true, type: 'work', value: str(mv.mail) }] : undefined,
    externalId: str(mv.sourceAnchor),
    name: { familyName: str(mv.sn), givenName: str(mv.givenName) },
    phoneNumbers: phones,
    schemas: [SCHEMA_USER, SCHEMA_ENTERPRISE, SCHEMA_ONPREM_USER],
    title: str(mv.title),
    [SCHEMA_ONPREM_USER]: {
      onPremisesDistinguishedName: str(mv.distinguishedName),
      onPremisesDomainName: str(mv.domainName),
      onPremisesImmutableId: str(mv.sourceAnchor),
      onPremisesSamAccountName: str(mv.accountName),
    },
    [SCHEMA_ENTERPRISE]: { department: str(mv.department), employeeNumber: str(mv.employeeId), organization: str(mv.company) },
    userName,
  });
}

test('userToScim writes the same text as the compacting implementation, on random metaverse users', () => {
  const names = ['accountEnabled', 'accountName', 'company', 'department', 'displayName', 'distinguishedName', 'domainName', 'employeeId', 'givenName', 'mail', 'mobile', 'sn', 'sourceAnchor', 'telephoneNumber', 'title', 'userPrincipalName', 'other'];
  const value = fc.oneof(fc.string({ maxLength: 6 }), fc.constant(''), fc.boolean(), fc.constant(null));
  fc.assert(
    fc.property(fc.dictionary(fc.constantFrom(...names), value), (mv) => {
      const before = compactingUserToScim(mv);
      const now = userToScim(mv);
      assert.equal(now.ok, before !== undefined);
      if (now.ok) assert.equal(JSON.stringify(now.resource), JSON.stringify(before));
    }),
    { numRuns: 3000, ...(process.env.IDSYNC_FC_SEED ? { seed: Number(process.env.IDSYNC_FC_SEED) } : {}) },
  );
});
