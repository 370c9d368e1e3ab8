import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LdapConnectorConfig } from '../../../src/config/schema.js';
import { createLdapConnector } from '../../../src/connectors/ldap/index.js';
import { writeLdif } from '../../../src/connectors/ldif/index.js';
import type { SourceConnector, SourceObject } from '../../../src/connectors/types.js';
import { isIdsyncError, type IdsyncError } from '../../../src/core/errors.js';
import { skipUnless } from '../../helpers/integration.js';
import { freePort, ldapConfigFor, startSlapd, type Slapd } from '../../helpers/slapd.js';
import { createTestCa } from '../../helpers/tls.js';

type LdapCfg = LdapConnectorConfig & { type: 'ldap' };

const cfgFor = ldapConfigFor;

async function collect(c: SourceConnector): Promise<{ objects: SourceObject[]; pages: number }> {
  const objects: SourceObject[] = [];
  let pages = 0;
  for await (const page of c.fullImport()) {
    pages++;
    objects.push(...page);
  }
  await c.close();
  return { objects, pages };
}

function seed(): string {
  const people = Array.from({ length: 25 }, (_, i) => ({
    dn: `uid=user${i},ou=people,dc=lab,dc=test`,
    attributes: { objectClass: ['inetOrgPerson'], uid: `user${i}`, cn: `User ${i}`, sn: `U${i}`, mail: `user${i}@lab.test` },
  }));
  return writeLdif([
    {
      dn: 'uid=alice,ou=people,dc=lab,dc=test',
      attributes: {
        objectClass: ['inetOrgPerson', 'sambaSamAccount'], uid: 'alice', cn: 'Alice Smith', sn: 'Smith', givenName: 'Alice',
        displayName: 'Alice Smith', mail: 'alice@lab.test', telephoneNumber: '+1 555 0100', mobile: '+1 555 0101', title: 'Engineer',
        departmentNumber: '42', ou: 'R&D', employeeNumber: '1001', employeeType: 'staff', manager: 'uid=bob,ou=people,dc=lab,dc=test',
        description: 'Zoë’s colleague', sambaSID: 'S-1-5-21-1-2-3-1000', sambaNTPassword: 'FC525C9683E8FE067095BA2DDC971889',
        userPassword: 'never-read',
      },
    },
    { dn: 'uid=bob,ou=people,dc=lab,dc=test', attributes: { objectClass: 'inetOrgPerson', uid: 'bob', cn: 'Bob', sn: 'B' } },
    ...people,
    { dn: 'ou=contractors,dc=lab,dc=test', attributes: { objectClass: 'organizationalUnit', ou: 'contractors' } },
    { dn: 'uid=carol,ou=contractors,dc=lab,dc=test', attributes: { objectClass: 'inetOrgPerson', uid: 'carol', cn: 'Carol', sn: 'C' } },
    {
      dn: 'cn=staff,ou=groups,dc=lab,dc=test',
      attributes: { objectClass: 'groupOfNames', cn: 'staff', member: ['uid=alice,ou=people,dc=lab,dc=test', 'uid=bob,ou=people,dc=lab,dc=test'] },
    },
    {
      dn: 'cn=admins,ou=groups,dc=lab,dc=test',
      attributes: { objectClass: 'groupOfUniqueNames', cn: 'admins', uniqueMember: ["uid=alice,ou=people,dc=lab,dc=test#'0101'B", 'uid=bob,ou=people,dc=lab,dc=test'] },
    },
  ]);
}

describe('LDAP connector against a real slapd', { skip: skipUnless('slapd') }, () => {
  let ldap: Slapd;
  const secret = async (): Promise<string> => ldap.adminPassword;

  before(async () => {
    ldap = await startSlapd({ tls: true, sambaSchema: true, seedLdif: seed() });
  });
  after(() => ldap?.stop());

  it('imports users with every listed attribute, anchored on entryUUID', async () => {
    const { objects } = await collect(createLdapConnector(cfgFor(ldap), secret));
    const alice = objects.find((o) => o.attributes.uid?.[0] === 'alice');
    assert.ok(alice);
    assert.equal(alice.objectType, 'user');
    assert.match(alice.anchor, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.deepEqual(alice.attributes.entryuuid, [alice.anchor]);
    const expected: Record<string, string> = {
      cn: 'Alice Smith', sn: 'Smith', givenname: 'Alice', displayname: 'Alice Smith', mail: 'alice@lab.test', telephonenumber: '+1 555 0100',
      mobile: '+1 555 0101', title: 'Engineer', departmentnumber: '42', ou: 'R&D', employeenumber: '1001', employeetype: 'staff',
      manager: 'uid=bob,ou=people,dc=lab,dc=test', description: 'Zoë’s colleague', sambantpassword: 'FC525C9683E8FE067095BA2DDC971889',
    };
    for (const [k, v] of Object.entries(expected)) assert.deepEqual(alice.attributes[k], [v], k);
    assert.equal(alice.attributes.userpassword, undefined, 'userPassword is never read');
    for (const k of Object.keys(alice.attributes)) assert.equal(k, k.toLowerCase());
    assert.equal(objects.filter((o) => o.objectType === 'user').length, 28);
  });

  it('keeps the same anchor across imports', async () => {
    const a = await collect(createLdapConnector(cfgFor(ldap), secret));
    const b = await collect(createLdapConnector(cfgFor(ldap), secret));
    const map = (r: { objects: SourceObject[] }): string[] => r.objects.map((o) => `${o.dn}=${o.anchor}`).sort();
    assert.deepEqual(map(a), map(b));
  });

  it('imports groupOfNames and groupOfUniqueNames, stripping the uniqueMember uid suffix', async () => {
    const { objects } = await collect(createLdapConnector(cfgFor(ldap), secret));
    const staff = objects.find((o) => o.attributes.cn?.[0] === 'staff');
    const admins = objects.find((o) => o.attributes.cn?.[0] === 'admins');
    assert.equal(staff?.objectType, 'group');
    assert.deepEqual(staff?.attributes.member, ['uid=alice,ou=people,dc=lab,dc=test', 'uid=bob,ou=people,dc=lab,dc=test']);
    assert.equal(admins?.objectType, 'group');
    assert.deepEqual(admins?.attributes.uniquemember, ['uid=alice,ou=people,dc=lab,dc=test', 'uid=bob,ou=people,dc=lab,dc=test']);
  });

  it('streams pages of pageSize entries', async () => {
    const { objects, pages } = await collect(createLdapConnector(cfgFor(ldap, { pageSize: 5 }), secret));
    assert.equal(objects.length, 30);
    assert.ok(pages >= 6, `expected >= 6 pages, got ${pages}`);
  });

  it('applies scope include/exclude with DN normalisation', async () => {
    const inc = await collect(createLdapConnector(cfgFor(ldap, { scope: { include: ['OU=Contractors, DC=LAB,DC=test'], exclude: [] } }), secret));
    assert.deepEqual(inc.objects.map((o) => o.attributes.uid?.[0]), ['carol']);
    const exc = await collect(createLdapConnector(cfgFor(ldap, { scope: { include: [], exclude: ['ou=People,dc=lab,dc=TEST'] } }), secret));
    assert.deepEqual(exc.objects.map((o) => o.attributes.uid?.[0] ?? o.attributes.cn?.[0]).sort(), ['admins', 'carol', 'staff']);
  });

  it('reads the secret on every connect (a changed password takes effect without a restart)', async () => {
    let calls = 0;
    let pw = 'wrong';
    const c = createLdapConnector(cfgFor(ldap), async () => {
      calls++;
      return pw;
    });
    await assert.rejects(c.test(), (e: unknown) => isIdsyncError(e, 'LDAP_BIND_FAILED'));
    pw = ldap.adminPassword;
    await c.test();
    await collect(c);
    assert.equal(calls, 3);
  });

  it('wrong password -> LDAP_BIND_FAILED naming the bind DN, never the password', async () => {
    const c = createLdapConnector(cfgFor(ldap), async () => 'S3cr3t-Wr0ng');
    await assert.rejects(c.test(), (e: unknown) => {
      assert.ok(isIdsyncError(e, 'LDAP_BIND_FAILED'), String(e));
      assert.equal(e.message, 'connector "openldap": the directory refused the bind for cn=admin,dc=lab,dc=test: invalid credentials');
      assert.ok(e.hint);
      assert.ok(!JSON.stringify({ m: e.message, h: e.hint, d: e.details }).includes('S3cr3t-Wr0ng'));
      return true;
    });
  });

  it('an empty password is refused (it would be an anonymous bind); none at all is CREDENTIAL_MISSING', async () => {
    await assert.rejects(createLdapConnector(cfgFor(ldap), async () => '').test(), (e: unknown) => isIdsyncError(e, 'LDAP_BIND_FAILED') && /empty password/.test(e.message));
    await assert.rejects(createLdapConnector(cfgFor(ldap), async () => undefined).test(), (e: unknown) => isIdsyncError(e, 'CREDENTIAL_MISSING'));
  });

  it('closed port -> LDAP_UNREACHABLE "connection refused"', async () => {
    const port = await freePort();
    const c = createLdapConnector(cfgFor({ ...ldap, url: `ldap://127.0.0.1:${port}` }), secret);
    await assert.rejects(c.test(), (e: unknown) => {
      assert.ok(isIdsyncError(e, 'LDAP_UNREACHABLE'), String(e));
      assert.equal(e.message, `connector "openldap": cannot reach ldap://127.0.0.1:${port}: connection refused`);
      assert.ok(e.hint);
      return true;
    });
  });

  it('a base DN that does not exist -> LDAP_SEARCH_FAILED naming the base', async () => {
    const c = createLdapConnector(cfgFor(ldap, { baseDn: 'ou=nowhere,dc=lab,dc=test' }), secret);
    await assert.rejects(c.test(), (e: unknown) => isIdsyncError(e, 'LDAP_SEARCH_FAILED') && e.message.includes('ou=nowhere,dc=lab,dc=test') && /no such object/.test(e.message));
  });

  it('a malformed filter -> LDAP_SEARCH_FAILED with base and filter', async () => {
    const c = createLdapConnector(cfgFor(ldap, { userFilter: '(objectClass=inetOrgPerson' }), secret);
    await assert.rejects(collect(c), (e: unknown) => isIdsyncError(e, 'LDAP_SEARCH_FAILED') && e.message.includes('(objectClass=inetOrgPerson') && e.message.includes('dc=lab,dc=test'));
  });

  describe('TLS', () => {
    const tlsOk = (extra: Partial<LdapCfg>): Promise<void> => createLdapConnector(cfgFor(ldap, extra), secret).test();
    const tlsFails = async (extra: Partial<LdapCfg>, reason: RegExp): Promise<IdsyncError> => {
      let caught: IdsyncError | undefined;
      await assert.rejects(createLdapConnector(cfgFor(ldap, extra), secret).test(), (e: unknown) => {
        assert.ok(isIdsyncError(e, 'LDAP_TLS_FAILED'), String(e));
        assert.match(e.message, reason);
        assert.ok(e.hint && /tls\.(ca|serverName)|certificate/.test(e.hint), e.hint);
        caught = e;
        return true;
      });
      return caught as IdsyncError;
    };

    it('ldaps:// with the CA file works', () => tlsOk({ url: ldap.ldapsUrl as string, tls: { ca: ldap.caFile, startTls: false, insecureSkipVerify: false } }));

    it('StartTLS with the CA file works', () => tlsOk({ tls: { ca: ldap.caFile, startTls: true, insecureSkipVerify: false } }));

    it('ldaps:// without the CA -> LDAP_TLS_FAILED (not trusted)', async () => {
      await tlsFails({ url: ldap.ldapsUrl as string }, /TLS to ldaps:\/\/127\.0\.0\.1:\d+ failed: .*(self-signed|trusted CA)/);
    });

    it('a wrong CA -> LDAP_TLS_FAILED, also with StartTLS', async () => {
      const other = createTestCa(ldap.dir, 'other-ca');
      await tlsFails({ url: ldap.ldapsUrl as string, tls: { ca: other.certFile, startTls: false, insecureSkipVerify: false } }, /self-signed|trusted CA/);
      await tlsFails({ tls: { ca: other.certFile, startTls: true, insecureSkipVerify: false } }, /self-signed|trusted CA/);
    });

    it('an unreadable CA file -> LDAP_TLS_FAILED naming the file', async () => {
      await tlsFails({ url: ldap.ldapsUrl as string, tls: { ca: '/nonexistent/ca.pem', startTls: false, insecureSkipVerify: false } }, /cannot read the CA file \/nonexistent\/ca\.pem/);
    });

    it('insecureSkipVerify accepts any certificate', () => tlsOk({ url: ldap.ldapsUrl as string, tls: { startTls: false, insecureSkipVerify: true } }));

    it('ldaps:// against the plain port -> LDAP_TLS_FAILED or UNREACHABLE, never a hang', async () => {
      await assert.rejects(createLdapConnector(cfgFor(ldap, { url: ldap.url.replace('ldap:', 'ldaps:'), tls: { ca: ldap.caFile, startTls: false, insecureSkipVerify: false } }), secret).test(), (e: unknown) =>
        isIdsyncError(e, 'LDAP_TLS_FAILED') || isIdsyncError(e, 'LDAP_UNREACHABLE'),
      );
    });
  });
});

describe('LDAP connector TLS certificate names and expiry', { skip: skipUnless('slapd') }, () => {
  let named: Slapd;
  let expired: Slapd;
  before(async () => {
    // like Samba's: CN only, no SAN, a name other than the URL host
    named = await startSlapd({ tls: { cn: 'ldap1.lab.test', san: null } });
    expired = await startSlapd({ tls: { expired: true } });
  });
  after(async () => {
    await named?.stop();
    await expired?.stop();
  });

  it('a certificate for another name -> LDAP_TLS_FAILED "name mismatch"; tls.serverName fixes it', async () => {
    const base = cfgFor(named, { url: named.ldapsUrl as string });
    await assert.rejects(createLdapConnector({ ...base, tls: { ca: named.caFile, startTls: false, insecureSkipVerify: false } }, async () => named.adminPassword).test(), (e: unknown) => {
      assert.ok(isIdsyncError(e, 'LDAP_TLS_FAILED'), String(e));
      assert.match(e.message, /name mismatch/);
      assert.match(e.hint ?? '', /tls\.serverName/);
      return true;
    });
    await createLdapConnector({ ...base, tls: { ca: named.caFile, serverName: 'ldap1.lab.test', startTls: false, insecureSkipVerify: false } }, async () => named.adminPassword).test();
    await createLdapConnector({ ...cfgFor(named), tls: { ca: named.caFile, serverName: 'ldap1.lab.test', startTls: true, insecureSkipVerify: false } }, async () => named.adminPassword).test();
  });

  it('an expired certificate -> LDAP_TLS_FAILED "expired"', async () => {
    await assert.rejects(
      createLdapConnector(cfgFor(expired, { url: expired.ldapsUrl as string, tls: { ca: expired.caFile, startTls: false, insecureSkipVerify: false } }), async () => expired.adminPassword).test(),
      (e: unknown) => isIdsyncError(e, 'LDAP_TLS_FAILED') && /expired/.test(e.message),
    );
  });
});
