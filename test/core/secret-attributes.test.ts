/**
 * Issue 9, defect 2: password material never reaches the connector space. Secret attributes are
 * matched by TYPE (options such as ;lang-en or ;x-opt ignored, any case) against one list, before
 * anything is staged, traced (`sync --object`), previewed, logged or put in an error. Unit checks
 * of the list and the connectors' conversion, then the real CLI against a real cloud directory:
 * every output and every byte of every file in the data folder is scanned for each secret.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ldifRecordToObject } from '../../src/connectors/ldif/index.js';
import { ldapEntryToObject } from '../../src/connectors/ldap/index.js';
import { attributeType, dropSecretAttributes, isSecretAttribute, SECRET_ATTRIBUTE_TYPES } from '../../src/core/secret-attributes.js';
import { ntHash } from '../../src/passwords/hash.js';
import { extractPasswordAttributes } from '../../src/passwords/index.js';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { BIN, signIn } from '../helpers/processes.js';

describe('the secret attribute list', () => {
  test('matches by type: options and case do not matter', () => {
    for (const d of ['userPassword', 'userPassword;lang-en', 'USERPASSWORD;x-opt;binary', 'sambaNTPassword;x-opt', 'unicodePwd;x-opt', 'sambaLMPassword', 'krbPrincipalKey;binary', 'msDS-ManagedPassword', 'ntPwdHistory', 'supplementalCredentials', 'trustAuthIncoming', 'initialAuthOutgoing', 'priorValue', 'currentValue', '2.5.4.35;x-a']) {
      assert.ok(isSecretAttribute(d), d);
    }
    for (const d of ['cn', 'cn;lang-en', 'mail', 'userPasswordHint', 'sambaSID', 'passwordExpiry', 'description;x-userPassword']) assert.ok(!isSecretAttribute(d), d);
    assert.equal(attributeType(' SambaNTPassword;X-Opt '), 'sambantpassword');
  });

  test('the list holds the types the issue names, lower-case, without options', () => {
    for (const t of ['userpassword', 'unicodepwd', 'dbcspwd', 'ntpwdhistory', 'lmpwdhistory', 'supplementalcredentials', 'sambantpassword', 'sambalmpassword', 'sambapasswordhistory', 'krbprincipalkey', 'krbextradata', 'msds-managedpassword', 'msds-keycredentiallink', 'priorvalue', 'currentvalue', 'trustauthincoming', 'trustauthoutgoing', 'initialauthincoming', 'initialauthoutgoing']) {
      assert.ok(SECRET_ATTRIBUTE_TYPES.has(t), t);
    }
    for (const t of SECRET_ATTRIBUTE_TYPES) assert.equal(t, attributeType(t), `${t} is a bare lower-case type`);
  });

  test('dropSecretAttributes removes every secret key, whatever its options', () => {
    const a: Record<string, string[]> = { cn: ['x'], 'userpassword;lang-en': ['s'], 'sambalmpassword': ['s'], 'unicodepwd;x-opt': ['s'] };
    assert.deepEqual(dropSecretAttributes(a).sort(), ['sambalmpassword', 'unicodepwd', 'userpassword']);
    assert.deepEqual(a, { cn: ['x'] });
  });

  test('LDIF records: secrets with options never reach the object, an NT hash only under its bare type until extracted', async () => {
    const nt = (await ntHash('Opt-Pass-1!')).toString('hex').toUpperCase();
    const rec = {
      dn: 'uid=a,ou=people,dc=lab,dc=test',
      line: 1,
      attributes: [
        { name: 'objectClass', value: 'inetOrgPerson', line: 2 },
        { name: 'uid', value: 'a', line: 3 },
        { name: 'entryUUID', value: 'u-1', line: 4 },
        { name: 'userPassword;lang-en', value: 'clear-1', line: 5 },
        { name: 'sambaNTPassword;x-opt', value: nt, line: 6 },
        { name: 'sambaLMPassword', value: 'AAD3B435B51404EEAAD3B435B51404EE', line: 7 },
        { name: 'krbPrincipalKey;binary', value: Buffer.from('key'), line: 8 },
      ],
    };
    const o = ldifRecordToObject(rec, { anchorAttribute: 'entryUUID', src: { name: 'x.ldif' } })!;
    assert.deepEqual(Object.keys(o.attributes).sort(), ['entryuuid', 'objectclass', 'sambantpassword', 'uid']);
    assert.equal(extractPasswordAttributes(o).nt?.toString('hex').toUpperCase(), nt);
    assert.deepEqual(Object.keys(o.attributes).sort(), ['entryuuid', 'objectclass', 'uid']);
  });

  test('LDAP entries: secret types the server returns are not kept', () => {
    const o = ldapEntryToObject({ dn: 'uid=b,dc=x', entryUUID: 'u-2', uid: 'b', 'userPassword;x-opt': 'p', sambaLMPassword: 'l', 'sambaNTPassword;x-opt': 'AB'.repeat(16) }, 'user', 'hr');
    assert.deepEqual(Object.keys(o.attributes).sort(), ['entryuuid', 'sambantpassword', 'uid']);
  });
});

function run(config: string, args: string[], input?: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, '-c', config, ...args], { env: { ...process.env, IDSYNC_CONFIG: '', NO_COLOR: '1' } });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stdin.end(input ?? '');
    child.on('close', (code) => resolve({ code, out }));
  });
}

describe('idsync sync with secret attributes in the source (real CLI, real cloud)', () => {
  let cloud: TestCloud;
  let dir: string;
  let config: string;
  const password = 'Sync-Me-In-9!';
  let nt: string;
  /** Distinctive values, each in a secret attribute with options; none may show up anywhere. */
  const secrets = ['clear-userpassword-LANG', 'unicodePwd-opt-value-xyz', 'LMHASH0123456789ABCDEF0123456789', 'krb-principal-key-material', 'managed-gmsa-blob-value', 'ppolicy-history-hash', 'trust-auth-incoming-value'];
  const outputs: string[] = [];

  before(async () => {
    cloud = await startTestCloud();
    dir = mkdtempSync(path.join(tmpdir(), 'idsync-secret-attrs-'));
    config = path.join(dir, 'idsync.yaml');
    nt = (await ntHash(password)).toString('hex').toUpperCase();
    writeFileSync(
      config,
      `dataDir: ./data\nconnectors:\n  - name: hr\n    type: ldif\n    path: ./source.ldif\ncloud:\n  url: ${cloud.url}\n  auth: { type: client_credentials, clientId: ${cloud.syncClientId} }\n`,
    );
    writeFileSync(
      path.join(dir, 'source.ldif'),
      [
        'version: 1',
        '',
        'dn: uid=sam,ou=people,dc=lab,dc=test',
        'objectClass: inetOrgPerson',
        'objectClass: sambaSamAccount',
        'uid: sam',
        'cn: Sam',
        'sn: S',
        'mail: sam@lab.test',
        'entryUUID: 7d3c2b1a-0000-4000-8000-000000000001',
        `userPassword;lang-en: ${secrets[0]}`,
        `unicodePwd;x-opt:: ${Buffer.from(secrets[1]!).toString('base64')}`,
        `sambaLMPassword: ${secrets[2]}`,
        `SAMBANTPASSWORD;x-opt: ${nt}`,
        `krbPrincipalKey: ${secrets[3]}`,
        `msDS-ManagedPassword: ${secrets[4]}`,
        `pwdHistory: ${secrets[5]}`,
        `trustAuthIncoming;x-a: ${secrets[6]}`,
        '',
      ].join('\n'),
    );
    assert.equal((await run(config, ['credentials', 'set', 'cloud', '--no-validate'], `${cloud.syncSecret}\n`)).code, 0);
  });

  after(async () => {
    await cloud?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (cloud) rmSync(cloud.dataDir, { recursive: true, force: true });
  });

  test('preview, cycle and the one-object trace show no secret; the NT hash with options still signs the user in', async () => {
    for (const args of [['sync', '--preview'], ['sync'], ['sync', '--object', 'uid=sam,ou=people,dc=lab,dc=test'], ['sync', '--object', 'uid=sam,ou=people,dc=lab,dc=test', '--json'], ['runs', '1'], ['events', '--json']]) {
      const r = await run(config, args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.out}`);
      outputs.push(r.out);
    }
    const all = outputs.join('\n').toLowerCase();
    assert.doesNotMatch(all, /sambantpassword|userpassword|unicodepwd|sambalmpassword|krbprincipalkey|pwdhistory|trustauth|managedpassword/, 'no secret attribute is even named');
    for (const s of [...secrets, nt]) assert.ok(!all.includes(s.toLowerCase()), `the output holds no ${s.slice(0, 6)}…`);
    assert.equal(await signIn(cloud.url, 'sam@lab.test', password), 200, 'sambaNTPassword;x-opt was read as the NT hash');
  });

  test('no file in the data folder holds a secret (UTF-8, UTF-16LE, base64, hex either case); files are private', () => {
    const data = path.join(dir, 'data');
    assert.equal(statSync(data).mode & 0o777, 0o700);
    const ntBytes = Buffer.from(nt, 'hex');
    for (const f of readdirSync(data)) {
      const file = path.join(data, f);
      assert.equal(statSync(file).mode & 0o077, 0, `${f} is 0600`);
      const bytes = readFileSync(file);
      const forms = [...secrets, nt].flatMap((s) => [Buffer.from(s), Buffer.from(s.toLowerCase()), Buffer.from(s, 'utf16le'), Buffer.from(Buffer.from(s).toString('base64'))]);
      for (const form of [...forms, ntBytes]) assert.equal(bytes.indexOf(form), -1, `${f} holds no secret`);
    }
  });
});
