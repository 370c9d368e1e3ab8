/**
 * Declarative rules through the whole engine: two sources joined by a soft-match rule into one
 * cloud user with attributes by precedence, scoping by attribute and by group, outbound flows, a
 * rule change that re-flows everything, and a typo rejected with file, line and what is expected.
 * LDIF sources, the engine on SQLite, the real cloud directory over HTTP.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { isIdsyncError } from '../../src/core/errors.js';
import type { EngineContext } from '../../src/engine/context.js';
import { runCycle } from '../../src/engine/cycle.js';
import type { TestCloud } from '../helpers/cloud.js';
import { startEngineLab, type EngineLab } from '../helpers/engine-lab.js';

const ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';

const hr = (title = 'HR Title') => `version: 1

dn: uid=ann,ou=people,dc=hr,dc=test
objectClass: inetOrgPerson
uid: ann
cn: Ann From HR
sn: Smith
givenName: Ann
mail: Ann.Smith@corp.test
title: ${title}
departmentNumber: Finance
entryUUID: 11111111-1111-4111-8111-111111111111

dn: uid=bob,ou=people,dc=hr,dc=test
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: Jones
mail: bob@corp.test
departmentNumber: Contractors
entryUUID: 22222222-2222-4222-8222-222222222222
`;

const ad = `version: 1

dn: CN=Ann Smith,OU=Staff,DC=corp,DC=test
objectClass: user
sAMAccountName: asmith
userPrincipalName: asmith@corp.test
mail: ann.smith@corp.test
displayName: Ann Smith (AD)
title: AD Title
department: Accounting
objectGUID:: AAECAwQFBgcICQoLDA0ODw==

dn: CN=Cara,OU=Staff,DC=corp,DC=test
objectClass: user
sAMAccountName: cara
userPrincipalName: cara@corp.test
mail: cara@corp.test
objectGUID:: EBESExQVFhcYGRobHB0eHw==

dn: CN=Dan,OU=Staff,DC=corp,DC=test
objectClass: user
sAMAccountName: dan
userPrincipalName: dan@corp.test
mail: dan@corp.test
objectGUID:: ICEiIyQlJicoKSorLC0uLw==

dn: CN=Cloud Users,OU=Groups,DC=corp,DC=test
objectClass: group
sAMAccountName: cloudusers
member: CN=Ann Smith,OU=Staff,DC=corp,DC=test
member: CN=Cara,OU=Staff,DC=corp,DC=test
objectGUID:: MDEyMzQ1Njc4OTo7PD0+Pw==
`;

function rules(extra: Record<string, unknown> = {}) {
  return {
    scope: [
      { connector: 'hr', objectType: 'user', where: 'first(attributes, "departmentnumber") != "Contractors"' },
      { connector: 'corp', objectType: 'user', memberOf: ['CN=Cloud Users,OU=Groups,DC=corp,DC=test'] },
    ],
    precedence: { default: ['corp', 'hr'], attributes: { title: ['hr', 'corp'] } },
    join: [{ objectType: 'user', attribute: 'mail' }],
    outbound: [{ objectType: 'user', target: `${ENTERPRISE}:costCenter`, expression: 'mv.department != null ? "CC-" + upper(mv.department) : ""' }],
    ...extra,
  };
}

describe('rules: soft-match join of two sources, precedence, scope, outbound', () => {
  let lab: EngineLab;
  let cloud: TestCloud;
  let dir: string;
  let configFile: string;
  let ctx: EngineContext;

  const writeConfig = (r: Record<string, unknown>) => lab.writeConfig({ rules: r });
  const reopen = () => {
    ctx = lab.reopen();
  };

  before(async () => {
    lab = await startEngineLab({
      prefix: 'idsync-rules-',
      connectors: [
        { name: 'corp', type: 'ldif', path: './ad.ldif', anchorAttribute: 'objectGUID' },
        { name: 'hr', type: 'ldif', path: './hr.ldif' },
      ],
      rules: rules(),
      files: { 'ad.ldif': ad, 'hr.ldif': hr() },
    });
    ({ cloud, dir, configFile, ctx } = lab);
  });

  after(() => lab?.close());

  test('two sources joined by mail become one cloud user, attributes by precedence', async () => {
    const run = await runCycle(ctx);
    assert.equal(run.status, 'success', JSON.stringify(run.errors));
    const users = await cloud.all('Users');
    const anns = users.filter((u) => /ann/i.test(u.emails?.[0]?.value ?? ''));
    assert.equal(anns.length, 1, 'Ann exists once');
    const ann = anns[0];
    assert.equal(ann.userName, 'asmith@corp.test', 'userPrincipalName from corp (default precedence)');
    assert.equal(ann.displayName, 'Ann Smith (AD)', 'displayName from corp');
    assert.equal(ann.title, 'HR Title', 'title from hr (per-attribute precedence)');
    assert.equal(ann[ENTERPRISE].department, 'Accounting');
    assert.equal(ann[ENTERPRISE].costCenter, 'CC-ACCOUNTING', 'outbound flow');
    assert.equal(ann.externalId, 'AAECAwQFBgcICQoLDA0ODw==', 'externalId: the anchor that projected it');
  });

  test('scope: an attribute condition and group membership keep objects out', async () => {
    const names = (await cloud.all('Users')).map((u) => u.userName).sort();
    assert.deepEqual(names, ['asmith@corp.test', 'cara@corp.test'], 'bob (Contractors) and dan (not in Cloud Users) are out');
  });

  test('a source change of the lower-precedence connector flows only where it has precedence', async () => {
    writeFileSync(path.join(dir, 'hr.ldif'), hr('Controller'));
    const run = await runCycle(ctx);
    assert.equal(run.status, 'success');
    const ann = (await cloud.all('Users')).find((u) => u.userName === 'asmith@corp.test');
    assert.equal(ann.title, 'Controller');
    assert.equal(run.steps.find((s) => s.step === 'export')!.updates, 1);
  });

  test('a rule change re-flows every object at the next cycle (full sync), no source change needed', async () => {
    writeConfig(rules({ precedence: { default: ['hr', 'corp'] } }));
    reopen();
    const run = await runCycle(ctx);
    assert.equal(run.steps.find((s) => s.step === 'sync')!.profile, 'full');
    const ann = (await cloud.all('Users')).find((u) => u.externalId === 'AAECAwQFBgcICQoLDA0ODw==');
    assert.equal(ann.displayName, 'Ann From HR', 'hr now has precedence');
    assert.equal(ann.userName, 'Ann.Smith@corp.test', 'the LDAP default userPrincipalName (mail) wins now');
  });

  test('a typo in a rule is rejected with the file, the line and what is expected', () => {
    writeFileSync(
      configFile,
      [
        'dataDir: ./data',
        'connectors:',
        '  - { name: corp, type: ldif, path: ./ad.ldif, anchorAttribute: objectGUID }',
        'cloud:',
        `  url: ${cloud.url}`,
        'rules:',
        '  inbound:',
        '    - target: displayName',
        '      expression: \'upper(mv.displayNme)\'',
        '  precedence:',
        '    default: [corp, crop]',
      ].join('\n'),
    );
    assert.throws(
      () => loadConfig(configFile),
      (err: unknown) => {
        assert.ok(isIdsyncError(err, 'CONFIG_INVALID'));
        assert.match(err.message, new RegExp(`${configFile.replace(/\./g, '\\.')}:9: `));
        assert.match(err.message, /displayNme/);
        return true;
      },
    );
    writeFileSync(configFile, readFileSync(configFile, 'utf8').replace('displayNme', 'displayName'));
    assert.throws(
      () => loadConfig(configFile),
      (err: unknown) => {
        assert.ok(isIdsyncError(err, 'CONFIG_INVALID'));
        assert.match(err.message, new RegExp(`${configFile.replace(/\./g, '\\.')}:11: `));
        assert.match(err.message, /crop/);
        return true;
      },
    );
  });
});
