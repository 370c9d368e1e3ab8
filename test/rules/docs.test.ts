/** The "defaults written as rules" block of docs/rules.md reproduces the built-in flows exactly. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { inboundFlow } from '../../src/engine/flows.js';
import type { SourceObject } from '../../src/connectors/types.js';
import { compileRules, DEFAULT_MV_ATTRIBUTES, rulesSchema, type RulesInput } from '../../src/rules/index.js';
import { CONNECTORS, adGroup, adUser, contractor, ldapUser, noDepartment } from './fixtures.js';

const text = readFileSync(new URL('../../docs/rules.md', import.meta.url), 'utf8');
const block = /<!-- default-rules:begin -->\s*```yaml\n([\s\S]*?)```\s*<!-- default-rules:end -->/.exec(text);
assert.ok(block, 'docs/rules.md has the default-rules block');
const input = (parse(block[1]!) as { rules: RulesInput }).rules;
const documented = compileRules(rulesSchema.parse(input), CONNECTORS);

const ldapGroup: SourceObject = { anchor: 'g1', objectType: 'group', dn: 'cn=staff,ou=groups,dc=partners,dc=test', attributes: { cn: ['staff'] } };
const disabled: SourceObject = { ...adUser, attributes: { ...adUser.attributes, useraccountcontrol: ['514'] } };
const noUac: SourceObject = { ...adUser, attributes: Object.fromEntries(Object.entries(adUser.attributes).filter(([k]) => k !== 'useraccountcontrol')) };
const ldapNoMail: SourceObject = { ...ldapUser, attributes: { uid: ['eve'], cn: ['Eve'], ou: ['Research'] } };
const ldapNoDomain: SourceObject = { ...ldapNoMail, dn: 'uid=eve,o=partners' };

describe('docs/rules.md: the defaults written as rules', () => {
  const cases: [string, string, 'ad' | 'ldap', SourceObject][] = [
    ['AD user', 'corp-ad', 'ad', adUser],
    ['AD contractor', 'corp-ad', 'ad', contractor],
    ['AD user without department', 'corp-ad', 'ad', noDepartment],
    ['AD disabled user (UAC 514)', 'corp-ad', 'ad', disabled],
    ['AD user without userAccountControl', 'corp-ad', 'ad', noUac],
    ['AD group', 'corp-ad', 'ad', adGroup],
    ['LDAP user', 'partners', 'ldap', ldapUser],
    ['LDAP user without mail (uid@domain)', 'partners', 'ldap', ldapNoMail],
    ['LDAP user without mail or DC= parts', 'partners', 'ldap', ldapNoDomain],
    ['LDAP group', 'partners', 'ldap', ldapGroup],
  ];
  for (const [name, connector, kind, o] of cases) {
    test(`equals inboundFlow: ${name}`, () => {
      assert.deepEqual(documented.inbound(connector, kind, o), inboundFlow(kind, o));
    });
  }

  test('every default attribute except sourceAnchor has a rule, for each connector kind and object type', () => {
    const rulesOf = (connector: string, type: 'user' | 'group') =>
      new Set((input.inbound ?? []).filter((r) => (!r.connector || r.connector === connector) && (!r.objectType || r.objectType === type)).map((r) => r.target));
    for (const [connector, kind] of [['corp-ad', 'ad'], ['partners', 'ldap']] as const) {
      const userAttrs = Object.keys(inboundFlow(kind, connector === 'corp-ad' ? adUser : ldapUser)).filter((a) => a !== 'sourceAnchor');
      const groupAttrs = Object.keys(inboundFlow(kind, connector === 'corp-ad' ? adGroup : ldapGroup)).filter((a) => a !== 'sourceAnchor');
      assert.deepEqual([...userAttrs].filter((a) => !rulesOf(connector, 'user').has(a)), [], `${connector} users`);
      assert.deepEqual([...groupAttrs].filter((a) => !rulesOf(connector, 'group').has(a)), [], `${connector} groups`);
      for (const a of userAttrs) assert.ok((DEFAULT_MV_ATTRIBUTES as readonly string[]).includes(a), a);
    }
  });
});
