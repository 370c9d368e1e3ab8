/** The PATCH engine, table-driven. Inputs are deep-frozen: the engine must never modify them. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ScimError, type ScimType } from '../../../src/cloud/scim/errors.js';
import { applyPatch, parsePatchRequest, type PatchOperation } from '../../../src/cloud/scim/patch.js';
import { GROUP_TYPE, USER_TYPE, type ResourceTypeDef } from '../../../src/cloud/scim/schema.js';
import { ENTERPRISE, PATCH_OP } from './helpers.js';

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

const BASE = {
  userName: 'alice',
  name: { givenName: 'Alice', familyName: 'Smith' },
  emails: [
    { value: 'a@work.example', type: 'work', primary: true },
    { value: 'a@home.example', type: 'home' },
  ],
  [ENTERPRISE]: { department: 'R&D' },
};

const GROUP_BASE = {
  displayName: 'Admins',
  members: [
    { value: 'u1', type: 'User' },
    { value: 'u2', type: 'User' },
  ],
};

type Case = { name: string; ops: PatchOperation[]; expect: (b: typeof BASE) => Record<string, unknown>; rt?: ResourceTypeDef; base?: Record<string, unknown> };

const ok: Case[] = [
  { name: 'replace a simple attribute', ops: [{ op: 'replace', path: 'userName', value: 'alice2' }], expect: (b) => ({ ...b, userName: 'alice2' }) },
  { name: 'paths are case-insensitive', ops: [{ op: 'replace', path: 'USERNAME', value: 'x' }], expect: (b) => ({ ...b, userName: 'x' }) },
  { name: 'URN-qualified core path', ops: [{ op: 'replace', path: 'urn:ietf:params:scim:schemas:core:2.0:User:userName', value: 'y' }], expect: (b) => ({ ...b, userName: 'y' }) },
  { name: 'add a new attribute', ops: [{ op: 'add', path: 'title', value: 'Engineer' }], expect: (b) => ({ ...b, title: 'Engineer' }) },
  {
    name: 'replace via value filter and sub-attribute',
    ops: [{ op: 'replace', path: 'emails[type eq "work"].value', value: 'new@work.example' }],
    expect: (b) => ({ ...b, emails: [{ ...b.emails[0], value: 'new@work.example' }, b.emails[1]] }),
  },
  {
    name: 'value filter: attribute names, operators and caseExact=false values are case-insensitive',
    ops: [{ op: 'replace', path: 'EMAILS[TYPE EQ "WORK"].VALUE', value: 'n@work.example' }],
    expect: (b) => ({ ...b, emails: [{ ...b.emails[0], value: 'n@work.example' }, b.emails[1]] }),
  },
  {
    name: 'add a multi-valued element; a new primary demotes the old one',
    ops: [{ op: 'add', path: 'emails', value: [{ value: 'o@x.example', type: 'other', primary: true }] }],
    expect: (b) => ({ ...b, emails: [{ ...b.emails[0], primary: false }, b.emails[1], { value: 'o@x.example', type: 'other', primary: true }] }),
  },
  { name: 'adding an existing element changes nothing', ops: [{ op: 'add', path: 'emails', value: [BASE.emails[1]] }], expect: (b) => b },
  { name: 'remove elements matching a filter', ops: [{ op: 'remove', path: 'emails[type eq "home"]' }], expect: (b) => ({ ...b, emails: [b.emails[0]] }) },
  {
    name: 'remove a sub-attribute of matching elements',
    ops: [{ op: 'remove', path: 'emails[value sw "a@work"].primary' }],
    expect: (b) => ({ ...b, emails: [{ value: 'a@work.example', type: 'work' }, b.emails[1]] }),
  },
  { name: 'remove a whole attribute', ops: [{ op: 'remove', path: 'emails' }], expect: ({ emails: _e, ...rest }) => rest },
  { name: 'remove with a filter that matches nothing is a no-op', ops: [{ op: 'remove', path: 'phoneNumbers[type eq "fax"]' }], expect: (b) => b },
  { name: 'replace a sub-attribute of a complex attribute', ops: [{ op: 'replace', path: 'name.familyName', value: 'Jones' }], expect: (b) => ({ ...b, name: { ...b.name, familyName: 'Jones' } }) },
  { name: 'replace a complex attribute merges its sub-attributes', ops: [{ op: 'replace', path: 'name', value: { givenName: 'Al' } }], expect: (b) => ({ ...b, name: { givenName: 'Al', familyName: 'Smith' } }) },
  {
    name: 'add without a path merges an object of attributes',
    ops: [{ op: 'add', value: { title: 'X', NAME: { middleName: 'M' } } }],
    expect: (b) => ({ ...b, title: 'X', name: { ...b.name, middleName: 'M' } }),
  },
  {
    name: 'replace without a path, with an extension URN key',
    ops: [{ op: 'replace', value: { [ENTERPRISE]: { department: 'Ops' }, active: false } }],
    expect: (b) => ({ ...b, active: false, [ENTERPRISE]: { department: 'Ops' } }),
  },
  {
    name: 'replace without a path, with URN-qualified attribute keys (Entra style)',
    ops: [{ op: 'replace', value: { [`${ENTERPRISE}:employeeNumber`]: '42' } }],
    expect: (b) => ({ ...b, [ENTERPRISE]: { department: 'R&D', employeeNumber: '42' } }),
  },
  { name: 'add an extension attribute by URN path', ops: [{ op: 'add', path: `${ENTERPRISE}:employeeNumber`, value: '7' }], expect: (b) => ({ ...b, [ENTERPRISE]: { department: 'R&D', employeeNumber: '7' } }) },
  {
    name: 'extension sub-attribute path',
    ops: [{ op: 'add', path: `${ENTERPRISE}:manager.value`, value: 'm-1' }],
    expect: (b) => ({ ...b, [ENTERPRISE]: { department: 'R&D', manager: { value: 'm-1' } } }),
  },
  { name: 'add with the extension URN as path', ops: [{ op: 'add', path: ENTERPRISE, value: { costCenter: 'CC' } }], expect: (b) => ({ ...b, [ENTERPRISE]: { department: 'R&D', costCenter: 'CC' } }) },
  { name: 'removing the last extension attribute removes the extension', ops: [{ op: 'remove', path: `${ENTERPRISE}:department` }], expect: ({ [ENTERPRISE]: _x, ...rest }) => rest },
  {
    name: 'replace with a filter + sub-attribute creates the element the filter describes when none matches',
    ops: [{ op: 'replace', path: 'addresses[type eq "work"].locality', value: 'Paris' }],
    expect: (b) => ({ ...b, addresses: [{ type: 'work', locality: 'Paris' }] }),
  },
  {
    name: 'a filtered replace making another element primary sets primary to false on the old one',
    ops: [{ op: 'replace', path: 'emails[type eq "home"].primary', value: true }],
    expect: (b) => ({ ...b, emails: [{ ...b.emails[0], primary: false }, { ...b.emails[1], primary: true }] }),
  },
  {
    name: 'a filtered add merging primary into an element sets primary to false on the others',
    ops: [{ op: 'add', path: 'emails[type eq "home"]', value: { primary: true } }],
    expect: (b) => ({ ...b, emails: [{ ...b.emails[0], primary: false }, { ...b.emails[1], primary: true }] }),
  },
  {
    name: 'group: remove members[display eq "..."] (display as the service supplies it)',
    rt: GROUP_TYPE,
    base: { displayName: 'Admins', members: [{ value: 'u1', type: 'User', display: 'One' }, { value: 'u2', type: 'User', display: 'Two' }] },
    ops: [{ op: 'remove', path: 'members[display eq "one"]' }],
    expect: () => ({ displayName: 'Admins', members: [{ value: 'u2', type: 'User', display: 'Two' }] }),
  },
  { name: 'replace a multi-valued attribute replaces all values', ops: [{ op: 'replace', path: 'emails', value: [{ value: 'only@x.example' }] }], expect: (b) => ({ ...b, emails: [{ value: 'only@x.example' }] }) },
  { name: 'op names are case-insensitive (Replace)', ops: [{ op: 'Replace' as 'replace', path: 'title', value: 'T' }], expect: (b) => ({ ...b, title: 'T' }) },
  {
    name: 'group: add members appends, skipping members already present',
    rt: GROUP_TYPE,
    base: GROUP_BASE,
    ops: [{ op: 'add', path: 'members', value: [{ value: 'u2' }, { value: 'u3' }] }],
    expect: () => ({ ...GROUP_BASE, members: [...GROUP_BASE.members, { value: 'u3' }] }),
  },
  {
    name: 'group: remove members[value eq "..."]',
    rt: GROUP_TYPE,
    base: GROUP_BASE,
    ops: [{ op: 'remove', path: 'members[value eq "u1"]' }],
    expect: () => ({ ...GROUP_BASE, members: [GROUP_BASE.members[1]] }),
  },
  {
    name: 'group: remove members with a value list (Entra style)',
    rt: GROUP_TYPE,
    base: GROUP_BASE,
    ops: [{ op: 'remove', path: 'members', value: [{ value: 'u2' }] }],
    expect: () => ({ ...GROUP_BASE, members: [GROUP_BASE.members[0]] }),
  },
  { name: 'group: replace members with [] removes them all', rt: GROUP_TYPE, base: GROUP_BASE, ops: [{ op: 'replace', path: 'members', value: [] }], expect: () => ({ displayName: 'Admins' }) },
];

describe('applyPatch applies operations', () => {
  for (const c of ok) {
    test(c.name, () => {
      const base = deepFreeze(structuredClone(c.base ?? BASE));
      const ops = deepFreeze(structuredClone(c.ops));
      const out = applyPatch(c.rt ?? USER_TYPE, base, ops);
      assert.deepEqual(out, c.expect(structuredClone(BASE)));
      assert.deepEqual(base, c.base ?? BASE, 'input unchanged');
    });
  }
});

const errors: { name: string; ops: PatchOperation[]; scimType: ScimType; rt?: ResourceTypeDef; base?: Record<string, unknown> }[] = [
  { name: 'unknown attribute', ops: [{ op: 'add', path: 'foo', value: 1 }], scimType: 'invalidPath' },
  { name: 'unknown sub-attribute', ops: [{ op: 'replace', path: 'name.bogus', value: 'x' }], scimType: 'invalidPath' },
  { name: 'unknown attribute in a value filter', ops: [{ op: 'replace', path: 'emails[bogus eq "x"].value', value: 'a@b.c' }], scimType: 'invalidPath' },
  { name: 'unknown schema URN', ops: [{ op: 'add', path: 'urn:example:nope:2.0:User:x', value: 1 }], scimType: 'invalidPath' },
  { name: 'a filter on a single-valued attribute', ops: [{ op: 'replace', path: 'userName[value eq "x"]', value: 'a' }], scimType: 'invalidPath' },
  { name: 'malformed value filter', ops: [{ op: 'replace', path: 'emails[type eq', value: 'x' }], scimType: 'invalidPath' },
  { name: 'syntax error inside a value filter', ops: [{ op: 'replace', path: 'emails[type eq].value', value: 'x' }], scimType: 'invalidFilter' },
  { name: 'readOnly id', ops: [{ op: 'replace', path: 'id', value: 'x' }], scimType: 'mutability' },
  { name: 'readOnly meta sub-attribute', ops: [{ op: 'replace', path: 'meta.lastModified', value: '2020-01-01T00:00:00Z' }], scimType: 'mutability' },
  { name: 'readOnly id in a no-path replace', ops: [{ op: 'replace', value: { id: 'x' } }], scimType: 'mutability' },
  { name: 'readOnly groups', ops: [{ op: 'add', path: 'groups', value: [{ value: 'g' }] }], scimType: 'mutability' },
  { name: 'remove without a path', ops: [{ op: 'remove' }], scimType: 'noTarget' },
  { name: 'replace of elements when the filter matches none', ops: [{ op: 'replace', path: 'emails[type eq "other"]', value: { value: 'x@y.z' } }], scimType: 'noTarget' },
  { name: 'filter + sub when nothing matches and the filter is not a simple eq', ops: [{ op: 'replace', path: 'emails[type co "x"].value', value: 'x@y.z' }], scimType: 'noTarget' },
  { name: 'wrong type', ops: [{ op: 'replace', path: 'active', value: 'yes' }], scimType: 'invalidValue' },
  { name: 'an e-mail value that is not an e-mail address', ops: [{ op: 'add', path: 'emails', value: [{ value: 'not-an-email' }] }], scimType: 'invalidValue' },
  { name: 'a single-valued attribute given an array', ops: [{ op: 'replace', path: 'title', value: ['a'] }], scimType: 'invalidValue' },
  { name: 'no-path add with a non-object value', ops: [{ op: 'add', value: 'x' }], scimType: 'invalidValue' },
  { name: 'group: member value is immutable', rt: GROUP_TYPE, base: GROUP_BASE, ops: [{ op: 'replace', path: 'members[value eq "u1"].value', value: 'u9' }], scimType: 'mutability' },
  { name: 'group: member type must be User or Group', rt: GROUP_TYPE, base: GROUP_BASE, ops: [{ op: 'add', path: 'members', value: [{ value: 'u9', type: 'Device' }] }], scimType: 'invalidValue' },
];

describe('applyPatch rejects', () => {
  for (const c of errors) {
    test(`${c.name} → 400 ${c.scimType}`, () => {
      const base = deepFreeze(structuredClone(c.base ?? BASE));
      assert.throws(
        () => applyPatch(c.rt ?? USER_TYPE, base, deepFreeze(structuredClone(c.ops))),
        (e: unknown) => e instanceof ScimError && e.status === 400 && e.scimType === c.scimType,
      );
    });
  }
});

describe('parsePatchRequest', () => {
  test('accepts a PatchOp body and lower-cases op names', () => {
    assert.deepEqual(parsePatchRequest({ schemas: [PATCH_OP], Operations: [{ op: 'Add', path: 'title', value: 'x' }] }), [{ op: 'add', path: 'title', value: 'x' }]);
  });
  const bad: [string, unknown, ScimType][] = [
    ['missing schemas', { Operations: [{ op: 'add', path: 'title', value: 'x' }] }, 'invalidSyntax'],
    ['empty Operations', { schemas: [PATCH_OP], Operations: [] }, 'invalidSyntax'],
    ['unknown op', { schemas: [PATCH_OP], Operations: [{ op: 'move', path: 'title' }] }, 'invalidSyntax'],
    ['add without value', { schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'title' }] }, 'invalidValue'],
    ['non-string path', { schemas: [PATCH_OP], Operations: [{ op: 'remove', path: 5 }] }, 'invalidPath'],
  ];
  for (const [name, body, scimType] of bad) {
    test(`${name} → 400 ${scimType}`, () => {
      assert.throws(() => parsePatchRequest(body), (e: unknown) => e instanceof ScimError && e.status === 400 && e.scimType === scimType);
    });
  }
});
