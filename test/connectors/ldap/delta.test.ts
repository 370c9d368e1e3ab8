import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LdapConnectorConfig } from '../../../src/config/schema.js';
import { createLdapConnector } from '../../../src/connectors/ldap/index.js';
import type { DeltaChange, SourceConnector, SourceObject } from '../../../src/connectors/types.js';
import { isIdsyncError } from '../../../src/core/errors.js';
import { normalizeDn } from '../../../src/ldap/dn.js';
import { skipUnless } from '../../helpers/integration.js';
import { startSlapd, type Slapd } from '../../helpers/slapd.js';

type LdapCfg = LdapConnectorConfig & { type: 'ldap' };
const B = 'dc=lab,dc=test';
const P = `ou=people,${B}`;
const OUT = `ou=outside,${B}`;

function person(uid: string, parent = P): string {
  return `dn: uid=${uid},${parent}\nobjectClass: inetOrgPerson\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\ndescription: seeded\n`;
}

function seed(): string {
  return [
    ...['u1', 'u2', 'u3', 'u4', 'u5', 'u6'].map((u) => person(u)),
    `dn: ${OUT}\nobjectClass: organizationalUnit\nou: outside\n`,
    person('x1', OUT),
    person('x2', OUT),
    `dn: cn=g1,ou=groups,${B}\nobjectClass: groupOfNames\ncn: g1\nmember: uid=u1,${P}\nmember: uid=u2,${P}\n`,
    `dn: cn=g2,ou=groups,${B}\nobjectClass: groupOfNames\ncn: g2\nmember: uid=u1,${P}\n`,
  ].join('\n');
}

async function drain(c: SourceConnector, wm: string): Promise<{ changes: DeltaChange[]; watermark: string }> {
  const d = c.deltaImport!(wm);
  const changes: DeltaChange[] = [];
  for await (const page of d.pages) {
    assert.ok(page.length > 0, 'no empty pages');
    changes.push(...page);
  }
  return { changes, watermark: d.watermark() };
}

async function full(c: SourceConnector): Promise<SourceObject[]> {
  const out: SourceObject[] = [];
  for await (const page of c.fullImport()) out.push(...page);
  return out;
}

/** A comparable summary of a change: kind, anchor, normalised DN. */
const key = (ch: DeltaChange): string =>
  ch.kind === 'upsert' ? `upsert ${ch.object.anchor} ${normalizeDn(ch.object.dn)}` : `delete ${ch.anchor} ${ch.dn ? normalizeDn(ch.dn) : ''}`;

describe('LDAP delta import against a real slapd (entryCSN + accesslog)', { skip: skipUnless('slapd') }, () => {
  let ldap: Slapd;
  const secret = async (): Promise<string> => ldap.adminPassword;
  const cfg = (extra: Record<string, unknown> = {}): LdapCfg =>
    ({
      type: 'ldap',
      name: 'openldap',
      url: ldap.url,
      bindDn: ldap.adminDn,
      baseDn: B,
      tls: { startTls: false, insecureSkipVerify: false },
      scope: { include: [P, `ou=groups,${B}`], exclude: [] },
      userFilter: '(&(objectClass=inetOrgPerson)(!(description=excluded)))',
      pageSize: 2,
      timeoutMs: 5000,
      ...extra,
    }) as LdapCfg;
  const withLog = (): LdapCfg => cfg({ delta: { accesslogBase: 'cn=accesslog' } });
  const uuid = new Map<string, string>(); // uid/cn -> entryUUID

  before(async () => {
    ldap = await startSlapd({ accesslog: true, seedLdif: seed() });
    const c = await ldap.client();
    try {
      const r = await c.search(B, { scope: 'sub', filter: '(|(uid=*)(cn=g*))', attributes: ['uid', 'cn', 'entryUUID'] });
      for (const e of r.searchEntries) uuid.set(String(/^cn=/.test(e.dn) ? e.cn : e.uid), String(e.entryUUID));
    } finally {
      await c.unbind();
    }
  });
  after(() => ldap?.stop());

  it('returns exactly the changes since the watermark, then nothing; the watermark advances', async () => {
    const conn = createLdapConnector(withLog(), secret);
    const plain = createLdapConnector(cfg(), secret);
    try {
      const wm0 = await conn.currentWatermark!();
      const wmPlain = await plain.currentWatermark!();
      assert.match(wm0, /^\{"v":1,"type":"ldap","csn":"\d{14}\.\d{6}Z#/);
      const before = await full(conn);
      assert.equal(before.length, 8); // u1..u6, g1, g2

      await ldap.add(person('u7')); // add
      await ldap.modify(`dn: uid=u1,${P}\nchangetype: modify\nreplace: description\ndescription: changed\n`); // modify
      await ldap.modify(`dn: uid=u2,${P}\nchangetype: modrdn\nnewrdn: uid=u2b\ndeleteoldrdn: 1\n`); // rename
      await ldap.modify(`dn: uid=u3,${P}\nchangetype: modrdn\nnewrdn: uid=u3\ndeleteoldrdn: 1\nnewsuperior: ${OUT}\n`); // move out
      await ldap.modify(`dn: uid=x1,${OUT}\nchangetype: modrdn\nnewrdn: uid=x1\ndeleteoldrdn: 1\nnewsuperior: ${P}\n`); // move in
      await ldap.modify(`dn: uid=u4,${P}\nchangetype: delete\n`); // delete
      await ldap.modify(`dn: uid=u6,${P}\nchangetype: modify\nreplace: description\ndescription: excluded\n`); // leaves the filter
      await ldap.modify(`dn: cn=g1,ou=groups,${B}\nchangetype: modify\nadd: member\nmember: uid=u7,${P}\n-\ndelete: member\nmember: uid=u1,${P}\n`); // membership

      const { changes, watermark: wm1 } = await drain(conn, wm0);
      const expected = [
        `upsert ${uuid.get('u7') ?? '?'} uid=u7,${P}`,
        `upsert ${uuid.get('u1')} uid=u1,${P}`,
        `upsert ${uuid.get('u2')} uid=u2b,${P}`,
        `delete ${uuid.get('u3')} uid=u3,${OUT}`,
        `upsert ${uuid.get('x1')} uid=x1,${P}`,
        `delete ${uuid.get('u4')} uid=u4,${P}`,
        `delete ${uuid.get('u6')} uid=u6,${P}`,
        `upsert ${uuid.get('g1')} cn=g1,ou=groups,${B}`,
      ];
      // u7's UUID is only known now
      const u7 = changes.find((c) => c.kind === 'upsert' && c.object.attributes.uid?.[0] === 'u7');
      assert.ok(u7 && u7.kind === 'upsert');
      expected[0] = `upsert ${u7.object.anchor} uid=u7,${P}`;
      assert.deepEqual(changes.map(key).sort(), expected.map((e) => e.toLowerCase()).sort(), JSON.stringify(changes.map(key)));

      // upserts carry the whole object exactly as a full import maps it
      const now = await full(conn);
      for (const ch of changes) {
        if (ch.kind !== 'upsert') continue;
        const f = now.find((o) => o.anchor === ch.object.anchor);
        assert.deepEqual(ch.object, f);
      }
      const g1 = changes.find((c) => c.kind === 'upsert' && c.object.anchor === uuid.get('g1'));
      assert.ok(g1 && g1.kind === 'upsert');
      assert.deepEqual(g1.object.attributes.member?.map((d) => normalizeDn(d)).sort(), [`uid=u2,${P}`, `uid=u7,${P}`].sort());

      assert.notEqual(wm1, wm0);
      assert.ok(JSON.parse(wm1).csn > JSON.parse(wm0).csn);
      const again = await drain(conn, wm1);
      assert.deepEqual(again.changes, [], 'a second delta with the new watermark returns nothing');
      assert.equal(again.watermark, wm1);

      // without the accesslog, the delete of u4 is not seen (only a full import sees it)
      const p = await drain(plain, wmPlain);
      assert.ok(!p.changes.some((c) => c.kind === 'delete' && c.anchor === uuid.get('u4')));
      assert.equal(p.changes.length, changes.length - 1);
    } finally {
      await conn.close();
      await plain.close();
    }
  });

  it('sees a change made after the watermark, even between two deltas', async () => {
    const conn = createLdapConnector(withLog(), secret);
    try {
      const wm = await conn.currentWatermark!();
      await ldap.modify(`dn: uid=u5,${P}\nchangetype: modify\nreplace: description\ndescription: later\n`);
      const d = await drain(conn, wm);
      assert.deepEqual(d.changes.map(key), [`upsert ${uuid.get('u5')} uid=u5,${P}`.toLowerCase()]);
      assert.deepEqual(d.changes[0]?.kind === 'upsert' ? d.changes[0].object.attributes.description : [], ['later']);
      assert.deepEqual((await drain(conn, d.watermark)).changes, []);
    } finally {
      await conn.close();
    }
  });

  it('refuses unusable watermarks with WATERMARK_INVALID', async () => {
    const conn = createLdapConnector(withLog(), secret);
    const plain = createLdapConnector(cfg(), secret);
    try {
      const invalid = (err: unknown): boolean => isIdsyncError(err, 'WATERMARK_INVALID');
      for (const bad of ['', 'garbage', '{}', '[1]', '{"v":2,"type":"ldap","csn":"x"}', '{"v":1,"type":"ad","usn":"1"}', '{"v":1,"type":"ldap","csn":"20260101000000.000000Z#000000#000#000000)(x=*"}']) {
        assert.throws(() => conn.deltaImport!(bad), invalid, bad);
      }
      // taken without accesslog, used with it (and the other way round)
      const wmPlain = await plain.currentWatermark!();
      const wmLog = await conn.currentWatermark!();
      assert.throws(() => conn.deltaImport!(wmPlain), invalid);
      assert.throws(() => plain.deltaImport!(wmLog), invalid);
      // a CSN after the server's contextCSN (restored server)
      const future = JSON.stringify({ ...JSON.parse(await conn.currentWatermark!()), csn: '29990101000000.000000Z#000000#000#000000' });
      await assert.rejects(drain(conn, future), invalid);
      // the accesslog entry of the watermark purged
      const wm = await conn.currentWatermark!();
      assert.equal(JSON.parse(wm).logHasCsn, true);
      const c = await ldap.client();
      try {
        const r = await c.search('cn=accesslog', { scope: 'one', filter: `(entryCSN=${JSON.parse(wm).csn})`, attributes: ['1.1'] });
        for (const e of r.searchEntries) await c.del(e.dn);
      } finally {
        await c.unbind();
      }
      await assert.rejects(drain(conn, wm), invalid);
    } finally {
      await conn.close();
      await plain.close();
    }
  });
});
