/** Scoping filters and inbound flows. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inboundFlow } from '../../src/engine/flows.js';
import { normalizeDn } from '../../src/ldap/dn.js';
import { IdsyncError } from '../../src/core/errors.js';
import { adGroup, adUser, contractor, ldapUser, noDepartment, rules } from './fixtures.js';

const CLOUD_USERS = 'CN=Cloud Users,OU=Groups,DC=corp,DC=example,DC=com';

describe('scope', () => {
  const cases: { name: string; rule: Record<string, unknown>; object: typeof adUser; connector?: string; groups?: string[]; expected: boolean }[] = [
    { name: 'attribute condition keeps a staff user', rule: { where: 'first(attributes, "department") != "Contractors"' }, object: adUser, expected: true },
    { name: 'attribute condition drops a contractor', rule: { where: 'first(attributes, "department") != "Contractors"' }, object: contractor, expected: false },
    { name: 'attribute condition with first() on an absent attribute', rule: { where: 'first(attributes, "department") != "Contractors"' }, object: noDepartment, expected: true },
    { name: 'has() on an absent attribute', rule: { where: 'has(attributes.department)' }, object: noDepartment, expected: false },
    { name: 'dn condition', rule: { where: '!dn.contains(",OU=Contractors,")' }, object: contractor, expected: false },
    { name: 'objectType restricts the rule to users: a group passes', rule: { objectType: 'user', where: 'false' }, object: adGroup, expected: true },
    { name: 'a rule for another connector does not apply', rule: { where: 'false' }, object: ldapUser, connector: 'partners', expected: true },
    { name: 'memberOf: a member is in scope', rule: { objectType: 'user', memberOf: [CLOUD_USERS] }, object: adUser, groups: [CLOUD_USERS], expected: true },
    { name: 'memberOf: a non-member is out of scope', rule: { objectType: 'user', memberOf: [CLOUD_USERS] }, object: contractor, groups: [], expected: false },
    {
      name: 'memberOf compares normalised DNs (case, spaces)',
      rule: { memberOf: ['cn=cloud users, ou=groups, dc=corp, dc=example, dc=com'] },
      object: adUser,
      groups: [CLOUD_USERS],
      expected: true,
    },
    { name: 'where and memberOf must both hold', rule: { memberOf: [CLOUD_USERS], where: 'false' }, object: adUser, groups: [CLOUD_USERS], expected: false },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = rules({ scope: [{ connector: 'corp-ad', ...c.rule } as never] });
      const groups = new Set((c.groups ?? []).map((d) => normalizeDn(d)));
      assert.equal(r.inScope(c.connector ?? 'corp-ad', c.object, (g) => groups.has(g)), c.expected);
      assert.equal(r.needsMemberOf, 'memberOf' in c.rule);
    });
  }

  test('several scope rules for one connector: all must hold', () => {
    const r = rules({ scope: [{ connector: 'corp-ad', where: 'true' }, { connector: 'corp-ad', where: 'dn.startsWith("CN=Ann")' }] });
    assert.equal(r.inScope('corp-ad', adUser, () => false), true);
    assert.equal(r.inScope('corp-ad', contractor, () => false), false);
  });

  test('an expression that fails on an object throws OBJECT_INVALID naming the rule and the DN', () => {
    const r = rules({ scope: [{ connector: 'corp-ad', where: 'attributes.department[0] != "Contractors"' }] });
    assert.equal(r.inScope('corp-ad', adUser, () => false), true);
    assert.throws(
      () => r.inScope('corp-ad', noDepartment, () => false),
      (e: unknown) => e instanceof IdsyncError && e.code === 'OBJECT_INVALID' && e.details.rule === 'rules.scope.0.where' && e.details.dn === noDepartment.dn,
    );
  });
});

describe('inbound', () => {
  const cases: { name: string; rule: Record<string, unknown>; connector?: string; object?: typeof adUser; kind?: 'ad' | 'ldap'; expect: Record<string, unknown> }[] = [
    {
      name: 'override displayName from given name and surname',
      rule: { target: 'displayName', expression: 'first(attributes, "givenname") + " " + first(attributes, "sn")' },
      expect: { displayName: 'Ann Lee' },
    },
    { name: 'add a new attribute', rule: { target: 'employeeType', expression: '"staff"' }, expect: { employeeType: 'staff' } },
    { name: 'drop with null', rule: { target: 'department', expression: 'null' }, expect: { department: null } },
    { name: '"" also means no value', rule: { target: 'title', expression: '""' }, expect: { title: null } },
    { name: 'mv holds the defaults computed so far', rule: { target: 'mail', expression: 'lower(mv.mail)' }, expect: { mail: 'ann.lee@example.com' } },
    { name: 'bool result', rule: { target: 'accountEnabled', expression: '!dn.contains("OU=Disabled")' }, expect: { accountEnabled: true } },
    { name: 'integer result becomes decimal text', rule: { target: 'employeeId', expression: 'size(values(attributes, "proxyaddresses")) + 1000' }, expect: { employeeId: '1002' } },
    { name: 'list joined', rule: { target: 'proxies', expression: 'values(attributes, "proxyaddresses").join(";")' }, expect: { proxies: 'SMTP:ann@example.com;smtp:al@example.com' } },
    { name: 'replace (literal) and upper', rule: { target: 'accountName', expression: 'upper(replace(first(attributes, "samaccountname"), "a", "4"))' }, expect: { accountName: '4NN' } },
    { name: 'coalesce with an absent attribute', rule: { target: 'title', expression: 'coalesce(first(attributes, "jobtitle"), "n/a")' }, expect: { title: 'n/a' } },
    { name: 'isoDate of GeneralizedTime', rule: { target: 'created', expression: 'isoDate(first(attributes, "whencreated"))' }, expect: { created: '2024-01-15T14:30:45Z' } },
    { name: 'rdn and parentDn', rule: { target: 'ou', expression: 'rdn(parentDn(dn))' }, expect: { ou: 'Staff' } },
    { name: 'connector filter: the rule for partners does not touch corp-ad', rule: { connector: 'partners', target: 'title', expression: '"x"' }, expect: { title: 'Engineer' } },
    { name: 'objectType filter: a group rule does not touch users', rule: { objectType: 'group', target: 'title', expression: '"x"' }, expect: { title: 'Engineer' } },
    {
      name: 'LDAP connector rule applies to LDAP objects',
      rule: { connector: 'partners', target: 'company', expression: '"Partner Co"' },
      connector: 'partners',
      object: ldapUser,
      kind: 'ldap',
      expect: { company: 'Partner Co', accountName: 'bob' },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = rules({ inbound: [c.rule as never] });
      const object = c.object ?? adUser;
      const kind = c.kind ?? 'ad';
      const got = r.inbound(c.connector ?? 'corp-ad', kind, object);
      assert.deepEqual(got, { ...inboundFlow(kind, object), ...c.expect });
    });
  }

  test('later entries win, and see earlier results in mv', () => {
    const r = rules({
      inbound: [
        { target: 'title', expression: '"First"' },
        { target: 'title', expression: 'mv.title + " then second"' },
      ],
    });
    assert.equal(r.inbound('corp-ad', 'ad', adUser).title, 'First then second');
  });

  test('the documented displayName example works with and without displayname', () => {
    const r = rules({
      inbound: [
        {
          connector: 'corp-ad',
          objectType: 'user',
          target: 'displayName',
          expression: 'has(attributes.displayname) ? attributes.displayname[0] : attributes.givenname[0] + " " + attributes.sn[0]',
        },
      ],
    });
    assert.equal(r.inbound('corp-ad', 'ad', adUser).displayName, 'Ann Lee');
    const withDisplay = { ...adUser, attributes: { ...adUser.attributes, displayname: ['Ann L.'] } };
    assert.equal(r.inbound('corp-ad', 'ad', withDisplay).displayName, 'Ann L.');
  });

  test('a list result at run time is an OBJECT_INVALID error naming the rule', () => {
    const r = rules({ inbound: [{ target: 'title', expression: 'dyn(values(attributes, "proxyaddresses"))' }] });
    assert.throws(
      () => r.inbound('corp-ad', 'ad', adUser),
      (e: unknown) => e instanceof IdsyncError && e.code === 'OBJECT_INVALID' && e.details.rule === 'rules.inbound.0.expression',
    );
  });
});
