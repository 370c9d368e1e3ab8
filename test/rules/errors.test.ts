/** compileRules errors carry the configuration path; prototype probes are rejected at load. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isNode, LineCounter, parseDocument } from 'yaml';
import { IdsyncError } from '../../src/core/errors.js';
import { compileRules, rulesSchema } from '../../src/rules/index.js';
import { CONNECTORS, rules } from './fixtures.js';

function configError(fn: () => unknown): IdsyncError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof IdsyncError, `expected an IdsyncError, got ${String(e)}`);
    assert.equal(e.code, 'CONFIG_INVALID');
    return e;
  }
  assert.fail('expected CONFIG_INVALID');
}

describe('compileRules errors carry details.path', () => {
  const cases: { name: string; input: Record<string, unknown>; path: (string | number)[]; message: RegExp }[] = [
    {
      name: 'bad CEL syntax',
      input: { inbound: [{ target: 'title', expression: '"a"' }, { target: 'title', expression: 'first(attributes, "title") +' }] },
      path: ['rules', 'inbound', 1, 'expression'],
      message: /syntax error/,
    },
    { name: 'type error', input: { inbound: [{ target: 'title', expression: 'dn + 1' }] }, path: ['rules', 'inbound', 0, 'expression'], message: /type error/ },
    {
      name: 'unknown function',
      input: { outbound: [{ objectType: 'user', target: 'title', expression: 'shout(mv.title)' }] },
      path: ['rules', 'outbound', 0, 'expression'],
      message: /type error/,
    },
    { name: 'scope condition that is not a bool', input: { scope: [{ connector: 'corp-ad', where: 'dn' }] }, path: ['rules', 'scope', 0, 'where'], message: /expected a bool/ },
    { name: 'list result for a metaverse attribute', input: { inbound: [{ target: 'title', expression: 'values(attributes, "title")' }] }, path: ['rules', 'inbound', 0, 'expression'], message: /list/ },
    { name: 'unknown connector in scope', input: { scope: [{ connector: 'nope', where: 'true' }] }, path: ['rules', 'scope', 0, 'connector'], message: /unknown connector "nope"/ },
    { name: 'unknown connector in inbound', input: { inbound: [{ connector: 'nope', target: 'title', expression: '"x"' }] }, path: ['rules', 'inbound', 0, 'connector'], message: /unknown connector/ },
    { name: 'unknown precedence connector (default)', input: { precedence: { default: ['corp-ad', 'hr'] } }, path: ['rules', 'precedence', 'default', 1], message: /unknown connector "hr"/ },
    {
      name: 'unknown precedence connector (attribute)',
      input: { precedence: { attributes: { title: ['hr'] } } },
      path: ['rules', 'precedence', 'attributes', 'title', 0],
      message: /unknown connector "hr"/,
    },
    { name: 'duplicate precedence connector', input: { precedence: { default: ['corp-ad', 'corp-ad'] } }, path: ['rules', 'precedence', 'default', 1], message: /twice/ },
    { name: 'unknown metaverse attribute in precedence', input: { precedence: { attributes: { titel: ['corp-ad'] } } }, path: ['rules', 'precedence', 'attributes', 'titel'], message: /unknown metaverse attribute "titel"/ },
    { name: 'unknown metaverse attribute in join', input: { join: [{ objectType: 'user', attribute: 'email' }] }, path: ['rules', 'join', 0, 'attribute'], message: /unknown metaverse attribute "email"/ },
    {
      name: 'unknown metaverse attribute read through mv',
      input: { outbound: [{ objectType: 'user', target: 'title', expression: 'mv.titel' }] },
      path: ['rules', 'outbound', 0, 'expression'],
      message: /unknown metaverse attribute "mv.titel"/,
    },
    { name: 'sourceAnchor cannot be set', input: { inbound: [{ target: 'sourceAnchor', expression: '"x"' }] }, path: ['rules', 'inbound', 0, 'target'], message: /anchor/ },
    { name: 'externalId is managed', input: { outbound: [{ objectType: 'user', target: 'externalId', expression: '"x"' }] }, path: ['rules', 'outbound', 0, 'target'], message: /managed by idsync/ },
    { name: 'group members are managed', input: { outbound: [{ objectType: 'group', target: 'members', expression: 'null' }] }, path: ['rules', 'outbound', 0, 'target'], message: /managed/ },
    { name: 'bad SCIM path', input: { outbound: [{ objectType: 'user', target: 'emails[type eq "work"].value', expression: 'null' }] }, path: ['rules', 'outbound', 0, 'target'], message: /not an attribute name/ },
    { name: 'invalid memberOf DN', input: { scope: [{ connector: 'corp-ad', memberOf: ['not a dn'] }] }, path: ['rules', 'scope', 0, 'memberOf', 0], message: /not a valid DN/ },
    { name: 'scope rule without a condition', input: { scope: [{ connector: 'corp-ad' }] }, path: ['rules', 'scope', 0], message: /needs `where`/ },
    {
      name: 'regex with a nested quantifier',
      input: { scope: [{ connector: 'corp-ad', where: 'dn.matches("(a+)+$")' }] },
      path: ['rules', 'scope', 0, 'where'],
      message: /nested quantifier/,
    },
    {
      name: 'regex that is not a literal',
      input: { scope: [{ connector: 'corp-ad', where: 'dn.matches(dn)' }] },
      path: ['rules', 'scope', 0, 'where'],
      message: /literal/,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const e = configError(() => rules(c.input as never));
      assert.deepEqual(e.details.path, c.path);
      assert.match(e.message, c.message);
      assert.ok(e.message.startsWith(c.path.join('.') + ':'), e.message);
    });
  }

  test('details.path points at the right YAML line (what the loader does)', () => {
    const yaml = [
      'rules:', //                                  1
      '  inbound:', //                              2
      '    - target: title', //                     3
      '      expression: \'"ok"\'', //              4
      '    - target: department', //                5
      '      expression: \'first(attributes,\'', // 6
    ].join('\n');
    const lc = new LineCounter();
    const doc = parseDocument(yaml, { lineCounter: lc });
    const cfg = doc.toJS() as { rules: unknown };
    const e = configError(() => compileRules(rulesSchema.parse(cfg.rules), CONNECTORS));
    const node = doc.getIn(e.details.path as (string | number)[], true);
    assert.ok(isNode(node) && node.range);
    assert.equal(lc.linePos(node.range[0]).line, 6);
  });
});

describe('prototype and constructor probes are rejected at load', () => {
  const probes = [
    'attributes.constructor',
    '"".constructor',
    'attributes.__proto__',
    'attributes["__proto__"]',
    'attributes["constructor"]',
    'dn.constructor',
    'first(attributes, "constructor")',
    'attributes.hasOwnProperty',
    'dn.toString()',
    'dn.valueOf()',
    'mv.constructor',
    'mv["__proto__"]',
    'attributes.prototype',
    '[].constructor',
    '{}.constructor',
    'constructor',
    '__proto__',
    'dn.__defineGetter__("x", dn)',
  ];
  for (const p of probes) {
    test(`inbound: ${p}`, () => {
      const e = configError(() => rules({ inbound: [{ target: 'title', expression: `dyn(${p}) == null` }] }));
      assert.deepEqual(e.details.path, ['rules', 'inbound', 0, 'expression']);
      assert.match(e.message, /is not allowed in an expression|Reserved identifier/);
    });
  }
  test('scope and outbound reject probes too', () => {
    assert.match(configError(() => rules({ scope: [{ connector: 'corp-ad', where: 'has(attributes.constructor)' }] })).message, /not allowed/);
    assert.match(configError(() => rules({ outbound: [{ objectType: 'user', target: 'title', expression: 'mv.__proto__' }] })).message, /not allowed/);
  });
  test('a computed key cannot reach the prototype at run time either', () => {
    const r = rules({ inbound: [{ target: 'title', expression: 'dyn(attributes["con" + "structor"]) == null' }] });
    assert.throws(() => r.inbound('corp-ad', 'ad', { anchor: 'a', objectType: 'user', dn: 'CN=x', attributes: {} }), /No such key/);
    const f = rules({ inbound: [{ target: 'title', expression: 'first(attributes, "to" + "String")' }] });
    assert.equal(f.inbound('corp-ad', 'ad', { anchor: 'a', objectType: 'user', dn: 'CN=x', attributes: {} }).title, null);
  });
});
