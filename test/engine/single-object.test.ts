/**
 * `idsync sync --object DN` explains absence (issue 11): through the real CLI against a real slapd
 * and cloud, each way an object can be missing names its cause — the DN is not in the directory,
 * it is outside the connector's OUs, under an excluded OU, excluded by a scope rule (named), or not
 * a user or group at all — and an object that is in scope is still synced as before.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { skipUnless } from '../helpers/integration.js';
import { startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { runCli } from '../helpers/run-cli.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

interface Trace {
  import: { result: string };
  sync: { result: string };
  export: { result: string };
  why?: { code: string; message: string; rule?: string; connector?: string };
}

describe('sync --object explains why an object is not synced (real slapd + cloud)', { skip: skipUnless('slapd') }, () => {
  let slapd: Slapd;
  let lab: EngineLab;
  const dn = (rdn: string) => `${rdn},${slapd.baseDn}`;

  before(async () => {
    slapd = await startSlapd();
    const person = (uid: string, ou: string, title: string) =>
      `dn: uid=${uid},${ou}\nobjectClass: inetOrgPerson\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\ntitle: ${title}\n`;
    await slapd.add(
      [
        `dn: ou=former,ou=people,${slapd.baseDn}\nobjectClass: organizationalUnit\nou: former\n`,
        `dn: ou=contractors,${slapd.baseDn}\nobjectClass: organizationalUnit\nou: contractors\n`,
        person('ann', `ou=people,${slapd.baseDn}`, 'Engineer'),
        person('vic', `ou=people,${slapd.baseDn}`, 'Volunteer'),
        person('old', `ou=former,ou=people,${slapd.baseDn}`, 'Engineer'),
        person('con', `ou=contractors,${slapd.baseDn}`, 'Engineer'),
        `dn: cn=printer,ou=people,${slapd.baseDn}\nobjectClass: device\ncn: printer\n`,
      ].join('\n'),
    );
    lab = await startEngineLab({
      prefix: 'idsync-object-',
      connectors: [
        {
          name: 'corp-ldap',
          type: 'ldap',
          url: slapd.url,
          bindDn: slapd.adminDn,
          baseDn: slapd.baseDn,
          scope: { include: [`ou=people,${slapd.baseDn}`], exclude: [`ou=former,ou=people,${slapd.baseDn}`] },
        },
      ],
      rules: { scope: [{ connector: 'corp-ldap', objectType: 'user', where: 'first(attributes, "title") != "Volunteer"' }] },
      credentials: { 'corp-ldap': slapd.adminPassword },
      keepOpen: false,
    });
  });
  after(async () => {
    await lab?.close();
    await slapd?.stop();
  });

  async function trace(target: string): Promise<{ trace: Trace; text: string }> {
    const json = await runCli(['-c', lab.configFile, 'sync', '--object', target, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const text = await runCli(['-c', lab.configFile, 'sync', '--object', target]);
    assert.equal(text.code, 0, text.stderr);
    return { trace: JSON.parse(json.stdout) as Trace, text: text.stdout };
  }

  it('an object in scope is synced and needs no explanation', async () => {
    const { trace: t } = await trace(dn('uid=ann,ou=people'));
    assert.equal(t.import.result, 'added');
    assert.equal(t.export.result, 'added');
    assert.equal(t.why, undefined);
  });

  it('a DN that does not exist: says so, naming the connector', async () => {
    const { trace: t, text } = await trace(dn('uid=nobody,ou=people'));
    assert.equal(t.why?.code, 'NOT_FOUND');
    assert.match(t.why!.message, /does not exist in connector "corp-ldap"/);
    assert.match(text, /why\s+.*does not exist/);
  });

  it('outside the connector\'s scope.include: names the setting and its OUs', async () => {
    const { trace: t, text } = await trace(dn('uid=con,ou=contractors'));
    assert.equal(t.why?.code, 'OUTSIDE_OU_SCOPE');
    assert.equal(t.why?.rule, 'connectors.0.scope.include');
    assert.match(text, /not under any of its scope\.include OUs \(ou=people,dc=lab,dc=test\)/);
  });

  it('under an excluded OU: names the exclusion', async () => {
    const { trace: t } = await trace(dn('uid=old,ou=former,ou=people'));
    assert.equal(t.why?.code, 'EXCLUDED_OU');
    assert.equal(t.why?.rule, 'connectors.0.scope.exclude');
    assert.match(t.why!.message, /under its scope\.exclude OU ou=former,ou=people,dc=lab,dc=test/);
  });

  it('excluded by a scope rule: names the rule and its condition', async () => {
    const { trace: t, text } = await trace(dn('uid=vic,ou=people'));
    assert.equal(t.import.result === 'added' || t.import.result === 'unchanged', true);
    assert.equal(t.sync.result, 'out of scope');
    assert.equal(t.why?.code, 'SCOPE_RULE');
    assert.equal(t.why?.rule, 'rules.scope.0');
    assert.match(text, /excluded by the scope rule rules\.scope\.0 .*first\(attributes, "title"\) != "Volunteer".* is false/);
  });

  it('an entry that is neither a user nor a group: names the filters it misses', async () => {
    const { trace: t } = await trace(dn('cn=printer,ou=people'));
    assert.equal(t.why?.code, 'NOT_USER_OR_GROUP');
    assert.match(t.why!.message, /objectClass device.*neither its user filter \(objectClass=inetOrgPerson\)/);
  });

  it('a DN under no connector\'s base DN: says no connector reads it', async () => {
    const { trace: t } = await trace('cn=ann,dc=elsewhere,dc=test');
    assert.equal(t.why?.code, 'OUTSIDE_BASE');
    assert.match(t.why!.message, /under none of their base DNs \(corp-ldap: dc=lab,dc=test\)/);
  });
});
