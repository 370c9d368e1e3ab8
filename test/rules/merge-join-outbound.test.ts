/** Precedence merge, join keys, outbound flows and cloud soft match. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inboundFlow, SCHEMA_ENTERPRISE, userToScim, groupToScim, type MvAttrs } from '../../src/engine/flows.js';
import { IdsyncError } from '../../src/core/errors.js';
import { adGroup, adUser, rules } from './fixtures.js';

const AD = { connector: 'corp-ad', attrs: { title: 'Engineer', mail: 'ann@corp.example.com', mobile: null, company: 'Corp' } as MvAttrs };
const PARTNERS = { connector: 'partners', attrs: { title: 'Consultant', mail: 'ann@partners.test', mobile: '+1 555', company: null } as MvAttrs };

describe('precedence merge', () => {
  const cases: { name: string; precedence?: Record<string, unknown>; expected: MvAttrs }[] = [
    { name: 'default: connector order of `connectors`', expected: { title: 'Engineer', mail: 'ann@corp.example.com', mobile: '+1 555', company: 'Corp' } },
    {
      name: 'configured default order',
      precedence: { default: ['partners', 'corp-ad'] },
      expected: { title: 'Consultant', mail: 'ann@partners.test', mobile: '+1 555', company: 'Corp' },
    },
    {
      name: 'per-attribute order overrides the default for that attribute only',
      precedence: { attributes: { title: ['partners', 'corp-ad'] } },
      expected: { title: 'Consultant', mail: 'ann@corp.example.com', mobile: '+1 555', company: 'Corp' },
    },
    {
      name: 'a connector left out of a list comes after the listed ones',
      precedence: { default: ['partners'] },
      expected: { title: 'Consultant', mail: 'ann@partners.test', mobile: '+1 555', company: 'Corp' },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = rules(c.precedence ? { precedence: c.precedence as never } : {});
      assert.deepEqual(r.merge([PARTNERS, AD]), c.expected);
      assert.deepEqual(r.merge([AD, PARTNERS]), c.expected, 'independent of the order of contributions');
    });
  }

  test('all null stays null', () => {
    const r = rules({ precedence: { attributes: { mobile: ['corp-ad'] } } });
    assert.equal(r.merge([{ connector: 'corp-ad', attrs: { mobile: null } }, { connector: 'partners', attrs: { mobile: null } }]).mobile, null);
  });
});

describe('join keys', () => {
  const r = rules({
    join: [
      { objectType: 'user', attribute: 'mail' },
      { objectType: 'user', attribute: 'userPrincipalName' },
      { objectType: 'group', attribute: 'accountName' },
    ],
  });
  const cases: { name: string; type: 'user' | 'group'; attrs: MvAttrs; expected: { rule: string; value: string }[] }[] = [
    {
      name: 'values are trimmed and lower-cased, in rule order',
      type: 'user',
      attrs: { userPrincipalName: 'Ann@Corp.Example.com', mail: '  Ann.Lee@Example.COM ' },
      expected: [
        { rule: 'mail', value: 'ann.lee@example.com' },
        { rule: 'userPrincipalName', value: 'ann@corp.example.com' },
      ],
    },
    { name: 'null and empty values give no key', type: 'user', attrs: { mail: null, userPrincipalName: '  ' }, expected: [] },
    { name: 'rules for the other object type are ignored', type: 'group', attrs: { mail: 'x@y', accountName: 'Cloud-Users' }, expected: [{ rule: 'accountName', value: 'cloud-users' }] },
  ];
  for (const c of cases) {
    test(c.name, () => assert.deepEqual(r.joinKeys(c.type, c.attrs), c.expected));
  }
});

describe('outbound', () => {
  const mv = inboundFlow('ad', adUser);
  const base = (() => {
    const res = userToScim(mv);
    assert.ok(res.ok);
    return res.resource;
  })();
  const ENT = SCHEMA_ENTERPRISE;
  const cases: { name: string; rule: { target: string; expression: string }; check: (r: Record<string, unknown>) => void }[] = [
    { name: 'override a top-level attribute', rule: { target: 'title', expression: 'upper(mv.title)' }, check: (r) => assert.equal(r.title, 'ENGINEER') },
    { name: 'remove a top-level attribute with null', rule: { target: 'title', expression: 'null' }, check: (r) => assert.equal('title' in r, false) },
    {
      name: 'override a nested path',
      rule: { target: 'name.givenName', expression: 'mv.givenName + "!"' },
      check: (r) => assert.deepEqual(r.name, { givenName: 'Ann!', familyName: 'Lee' }),
    },
    {
      name: 'remove a nested path keeps its siblings',
      rule: { target: 'name.givenName', expression: 'null' },
      check: (r) => assert.deepEqual(r.name, { familyName: 'Lee' }),
    },
    {
      name: 'SCIM names are case-insensitive: Name.GivenName updates name.givenName',
      rule: { target: 'Name.GivenName', expression: '"A."' },
      check: (r) => assert.deepEqual(r.name, { givenName: 'A.', familyName: 'Lee' }),
    },
    {
      name: 'set an extension attribute',
      rule: { target: `${ENT}:costCenter`, expression: '"CC-" + mv.department' },
      check: (r) => assert.deepEqual(r[ENT], { department: 'Sales', costCenter: 'CC-Sales' }),
    },
    {
      name: 'remove an extension attribute; an emptied extension disappears',
      rule: { target: `${ENT}:department`, expression: 'null' },
      check: (r) => assert.equal(ENT in r, false),
    },
    {
      name: 'a new extension schema is added to schemas',
      rule: { target: 'urn:example:params:scim:schemas:extension:acme:2.0:User:badge', expression: '"B-" + mv.accountName' },
      check: (r) => {
        assert.deepEqual(r['urn:example:params:scim:schemas:extension:acme:2.0:User'], { badge: 'B-ann' });
        assert.ok((r.schemas as string[]).includes('urn:example:params:scim:schemas:extension:acme:2.0:User'));
      },
    },
    { name: 'integer results are numbers', rule: { target: 'x.level', expression: 'size(mv.accountName) * 2' }, check: (r) => assert.deepEqual(r.x, { level: 6 }) },
    { name: 'the brief example: null-safe upper', rule: { target: 'title', expression: 'mv.title == null ? null : upper(mv.title)' }, check: (r) => assert.equal(r.title, 'ENGINEER') },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const before = structuredClone(base);
      const r = rules({ outbound: [{ objectType: 'user', ...c.rule }] });
      const out = r.outbound('user', mv, base);
      c.check(out);
      assert.deepEqual(base, before, 'the input resource is not mutated');
    });
  }

  test('group rules do not touch users, and apply to groups', () => {
    const r = rules({ outbound: [{ objectType: 'group', target: 'displayName', expression: '"sg-" + lower(mv.displayName)' }] });
    assert.deepEqual(r.outbound('user', mv, base), base);
    const g = groupToScim(inboundFlow('ad', adGroup), []);
    assert.ok(g.ok);
    assert.equal(r.outbound('group', inboundFlow('ad', adGroup), g.resource).displayName, 'sg-cloud users');
  });

  test('removing userName is an OBJECT_INVALID error', () => {
    const r = rules({ outbound: [{ objectType: 'user', target: 'userName', expression: 'null' }] });
    assert.throws(() => r.outbound('user', mv, base), (e: unknown) => e instanceof IdsyncError && e.code === 'OBJECT_INVALID');
  });

  test('userName may be derived from another attribute', () => {
    const r = rules({ outbound: [{ objectType: 'user', target: 'userName', expression: 'lower(mv.mail)' }] });
    assert.equal(r.outbound('user', mv, base).userName, 'ann.lee@example.com');
  });
});

describe('cloud soft match', () => {
  test('enabled with the default attribute', () => {
    assert.deepEqual(rules({ cloudSoftMatch: { enabled: true } }).cloudSoftMatch, { enabled: true, attributes: ['userName'] });
  });
  test('enabled with emails', () => {
    assert.deepEqual(rules({ cloudSoftMatch: { enabled: true, attributes: ['userName', 'emails'] } }).cloudSoftMatch, {
      enabled: true,
      attributes: ['userName', 'emails'],
    });
  });
});
