import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Attribute, Change, type Client, type Entry } from 'ldapts';
import type { LdapConnectorConfig } from '../../../src/config/schema.js';
import { adEntryToObject, createAdConnector, fetchRangedValues } from '../../../src/connectors/ad/index.js';
import type { SourceConnector, SourceObject } from '../../../src/connectors/types.js';
import { isIdsyncError } from '../../../src/core/errors.js';
import { normalizeDn } from '../../../src/ldap/dn.js';
import { guidToString } from '../../../src/ldap/guid.js';
import { LdapBindError } from '../../../src/ldap/errors.js';
import { skipUnless } from '../../helpers/integration.js';
import { seedAdUsers, useSambaDC, type SambaDC, type SeededAd } from '../../helpers/samba.js';

type AdCfg = LdapConnectorConfig & { type: 'ad' };

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

describe('AD ranged attribute retrieval (unit)', () => {
  it('fetches member;range=1500-* until the server answers with an open range', async () => {
    const all = Array.from({ length: 3200 }, (_, i) => `CN=u${i},DC=t`);
    const asked: string[] = [];
    const fake = {
      async search(_dn: string, o: { attributes: string[] }) {
        const req = o.attributes[0] as string;
        asked.push(req);
        const start = Number(/range=(\d+)-/.exec(req)?.[1]);
        const end = Math.min(start + 1499, all.length - 1);
        const last = end === all.length - 1;
        return { searchEntries: [{ dn: 'CN=g,DC=t', [`member;range=${start}-${last ? '*' : end}`]: all.slice(start, end + 1) } as Entry], searchReferences: [] };
      },
    } as unknown as Client;
    const values = await fetchRangedValues(fake, 'CN=g,DC=t', 'member', all.slice(0, 1500), 1499);
    assert.deepEqual(asked, ['member;range=1500-*', 'member;range=3000-*']);
    assert.deepEqual(values, all);
  });

  it('converts an AD entry: base64 GUID anchor, GUID and SID strings, binary never leaks', () => {
    const guid = Buffer.from('4d3c1b2a6f5e8079a1b2c3d4e5f60718', 'hex');
    const sid = Buffer.from('010500000000000515000000c7e9fdd77c5c55c8944bce01f5030000', 'hex');
    const o = adEntryToObject({ dn: 'CN=a,DC=t', objectGUID: guid, objectSid: sid, sAMAccountName: 'a', unicodePwd: Buffer.alloc(16), member: [] }, 'user', 'ad');
    assert.equal(o.anchor, guid.toString('base64'));
    assert.deepEqual(o.attributes, { objectguid: ['2a1b3c4d-5e6f-7980-a1b2-c3d4e5f60718'], objectsid: ['S-1-5-21-3623741895-3361037436-30296980-1013'], samaccountname: ['a'] });
  });
});

describe('AD connector against a real Samba AD DC', { skip: skipUnless('samba') }, () => {
  let dc: SambaDC;
  let seeded: SeededAd;
  const OU = 'idsync-ad-connector';
  const secret = async (): Promise<string> => dc.adminPassword;
  const cfg = (extra: Partial<AdCfg> = {}): AdCfg => ({
    type: 'ad',
    name: 'corp',
    url: dc.url,
    bindDn: dc.adminUpn,
    baseDn: dc.baseDn,
    tls: { startTls: false, insecureSkipVerify: false },
    scope: { include: [seeded.ouDn], exclude: [] },
    pageSize: 1000,
    timeoutMs: 15000,
    ...extra,
  });

  before(async () => {
    dc = await useSambaDC();
    seeded = await seedAdUsers(dc, { ou: OU, users: 40, groups: 3, nested: true, disableEvery: 10 });
    const c = await dc.client();
    try {
      const [u0, u1] = seeded.users;
      await c.modify(u0!.dn, new Change({ operation: 'replace', modification: new Attribute({ type: 'manager', values: [u1!.dn] }) }));
    } finally {
      await c.unbind();
    }
  });
  after(() => dc?.stop());

  it('imports users with the listed attributes, anchored on base64(objectGUID)', async () => {
    const { objects } = await collect(createAdConnector(cfg(), secret));
    const users = objects.filter((o) => o.objectType === 'user');
    assert.equal(users.length, 40);
    const u0 = users.find((o) => o.attributes.samaccountname?.[0] === seeded.users[0]!.sAMAccountName);
    assert.ok(u0);
    assert.equal(Buffer.from(u0.anchor, 'base64').length, 16);
    assert.deepEqual(u0.attributes.objectguid, [guidToString(Buffer.from(u0.anchor, 'base64'))]);
    assert.match(u0.attributes.objectsid?.[0] ?? '', /^S-1-5-21-\d+-\d+-\d+-\d+$/);
    assert.deepEqual(u0.attributes.userprincipalname, [seeded.users[0]!.userPrincipalName]);
    for (const k of ['mail', 'givenname', 'sn', 'displayname', 'cn', 'department', 'title', 'company', 'telephonenumber', 'mobile', 'employeeid', 'description', 'useraccountcontrol', 'whenchanged', 'usnchanged']) {
      assert.equal(u0.attributes[k]?.length, 1, `${k} present`);
    }
    assert.equal(normalizeDn(u0.attributes.manager?.[0] ?? ''), normalizeDn(seeded.users[1]!.dn));
    assert.equal(u0.attributes.unicodepwd, undefined);
  });

  it("exposes a disabled user's userAccountControl (ACCOUNTDISABLE bit)", async () => {
    const { objects } = await collect(createAdConnector(cfg(), secret));
    const disabled = seeded.users.find((u) => u.disabled)!;
    const enabled = seeded.users.find((u) => !u.disabled)!;
    const uac = (sam: string): number => Number(objects.find((o) => o.attributes.samaccountname?.[0] === sam)?.attributes.useraccountcontrol?.[0]);
    assert.equal(uac(disabled.sAMAccountName) & 2, 2);
    assert.equal(uac(enabled.sAMAccountName) & 2, 0);
  });

  it('keeps anchors stable across imports', async () => {
    const a = await collect(createAdConnector(cfg(), secret));
    const b = await collect(createAdConnector(cfg(), secret));
    const m = (r: { objects: SourceObject[] }): string[] => r.objects.map((o) => `${o.dn}=${o.anchor}`).sort();
    assert.deepEqual(m(a), m(b));
  });

  it('imports groups with every member (nested group included) and groupType', async () => {
    const { objects } = await collect(createAdConnector(cfg(), secret));
    const groups = objects.filter((o) => o.objectType === 'group');
    assert.equal(groups.length, 3);
    for (const g of seeded.groups) {
      const got = groups.find((o) => o.attributes.samaccountname?.[0] === g.sAMAccountName);
      assert.ok(got, g.sAMAccountName);
      assert.deepEqual((got.attributes.member ?? []).map((d) => normalizeDn(d)).sort(), g.members.map((d) => normalizeDn(d)).sort());
      assert.ok(got.attributes.grouptype?.[0]);
    }
  });

  it('pages with a small pageSize', async () => {
    const { objects, pages } = await collect(createAdConnector(cfg({ pageSize: 7 }), secret));
    assert.equal(objects.length, 43);
    assert.ok(pages >= 6, `expected >= 6 pages, got ${pages}`);
  });

  it('excludes a sub-OU via scope.exclude', async () => {
    const c = await dc.client();
    const sub = `OU=excluded,${seeded.ouDn}`;
    try {
      await c.add(sub, { objectClass: ['top', 'organizationalUnit'], ou: 'excluded' });
      await c.add(`CN=hidden1,${sub}`, { objectClass: ['top', 'person', 'organizationalPerson', 'user'], sAMAccountName: 'idsynchidden1', userAccountControl: '544' });
    } finally {
      await c.unbind();
    }
    const all = await collect(createAdConnector(cfg(), secret));
    assert.ok(all.objects.some((o) => o.attributes.samaccountname?.[0] === 'idsynchidden1'));
    const scoped = await collect(createAdConnector(cfg({ scope: { include: [seeded.ouDn], exclude: [sub.toLowerCase()] } }), secret));
    assert.ok(!scoped.objects.some((o) => o.attributes.samaccountname?.[0] === 'idsynchidden1'));
    assert.equal(scoped.objects.length, 43);
  });

  it('skips computer accounts and krbtgt when reading the whole domain', async () => {
    const { objects } = await collect(createAdConnector(cfg({ scope: { include: [], exclude: [] } }), secret));
    const sams = objects.map((o) => o.attributes.samaccountname?.[0]?.toLowerCase());
    assert.ok(sams.includes('administrator'));
    assert.ok(!sams.includes('krbtgt'));
    assert.ok(!sams.some((s) => s?.endsWith('$')));
  });

  it('fetches ranged member values from the server (member;range=N-*)', async () => {
    const g = seeded.groups[0]!;
    const c = await dc.client();
    try {
      // pretend the server returned only the first two members in "member;range=0-1"
      const all = await fetchRangedValues(c, g.dn, 'member', ['first', 'second'], 1);
      assert.equal(all.length, 2 + g.members.length - 2);
      assert.deepEqual(all.slice(0, 2), ['first', 'second']);
    } finally {
      await c.unbind();
    }
  });

  it('wrong password -> LDAP_BIND_FAILED "invalid credentials" (AD data 52e)', async () => {
    await assert.rejects(createAdConnector(cfg(), async () => 'Nope-123').test(), (e: unknown) => {
      assert.ok(isIdsyncError(e, 'LDAP_BIND_FAILED'), String(e));
      assert.equal(e.message, 'connector "corp": the directory refused the bind for Administrator@lab.test: invalid credentials');
      assert.ok(e instanceof LdapBindError && e.reason === 'invalid-credentials' && e.wrongCredentials, 'a typed LdapBindError');
      assert.ok(!e.message.includes('Nope-123'));
      return true;
    });
  });

  it('ldaps:// with Samba\'s CA needs tls.serverName (cert CN=DC1.lab.test, no SAN)', async () => {
    await assert.rejects(createAdConnector(cfg({ url: dc.ldapsUrl, tls: { ca: dc.caFile, startTls: false, insecureSkipVerify: false } }), secret).test(), (e: unknown) =>
      isIdsyncError(e, 'LDAP_TLS_FAILED') && /name mismatch/.test(e.message),
    );
    await createAdConnector(cfg({ url: dc.ldapsUrl, tls: { ca: dc.caFile, serverName: dc.tlsServerName, startTls: false, insecureSkipVerify: false } }), secret).test();
  });

  it('StartTLS with CA and serverName imports the same objects', async () => {
    const plain = await collect(createAdConnector(cfg(), secret));
    const tls = await collect(createAdConnector(cfg({ tls: { ca: dc.caFile, serverName: dc.tlsServerName, startTls: true, insecureSkipVerify: false } }), secret));
    assert.deepEqual(tls.objects.map((o) => o.anchor).sort(), plain.objects.map((o) => o.anchor).sort());
  });
});
