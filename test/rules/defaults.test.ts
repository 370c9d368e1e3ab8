/** compileRules(undefined) must behave exactly like the built-in engine of src/engine/flows.ts. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inboundFlow, userToScim } from '../../src/engine/flows.js';
import { compileRules } from '../../src/rules/index.js';
import { CONNECTORS, adGroup, adUser, contractor, ldapUser, noDepartment, rules } from './fixtures.js';

describe('defaults (no rules section)', () => {
  const r = compileRules(undefined, CONNECTORS);
  const cases: { name: string; kind: 'ad' | 'ldap' | 'ldif'; connector: string; o: typeof adUser }[] = [
    { name: 'AD user', kind: 'ad', connector: 'corp-ad', o: adUser },
    { name: 'AD user without department', kind: 'ad', connector: 'corp-ad', o: noDepartment },
    { name: 'AD group', kind: 'ad', connector: 'corp-ad', o: adGroup },
    { name: 'LDAP user', kind: 'ldap', connector: 'partners', o: ldapUser },
    { name: 'LDIF user (detected as LDAP)', kind: 'ldif', connector: 'partners', o: ldapUser },
    { name: 'LDIF user (detected as AD)', kind: 'ldif', connector: 'partners', o: contractor },
  ];
  for (const c of cases) {
    test(`inbound equals inboundFlow: ${c.name}`, () => {
      assert.deepEqual(r.inbound(c.connector, c.kind, c.o), inboundFlow(c.kind, c.o));
    });
  }

  test('inScope is true for every object', () => {
    for (const o of [adUser, contractor, adGroup, ldapUser]) assert.equal(r.inScope('corp-ad', o, () => false), true);
  });

  test('merge takes the first non-null value in connector order', () => {
    const merged = r.merge([
      { connector: 'partners', attrs: { title: 'Consultant', mobile: '+1 555', mail: null } },
      { connector: 'corp-ad', attrs: { title: 'Engineer', mobile: null, mail: null } },
    ]);
    assert.deepEqual(merged, { title: 'Engineer', mobile: '+1 555', mail: null });
  });

  test('merge of one contribution returns its attributes unchanged', () => {
    const attrs = inboundFlow('ad', adUser);
    assert.deepEqual(r.merge([{ connector: 'corp-ad', attrs }]), attrs);
  });

  test('no join keys (anchor-only joins)', () => {
    assert.deepEqual(r.joinKeys('user', inboundFlow('ad', adUser)), []);
  });

  test('outbound is the identity', () => {
    const mv = inboundFlow('ad', adUser);
    const res = userToScim(mv);
    assert.ok(res.ok);
    assert.deepEqual(r.outbound('user', mv, res.resource), res.resource);
  });

  test('cloud soft match is disabled; isDefault is true', () => {
    assert.equal(r.cloudSoftMatch.enabled, false);
    assert.equal(r.isDefault, true);
  });

  test('an empty rules section is also the default', () => {
    const e = rules({});
    assert.equal(e.isDefault, true);
    assert.deepEqual(e.inbound('corp-ad', 'ad', adUser), inboundFlow('ad', adUser));
  });
});
