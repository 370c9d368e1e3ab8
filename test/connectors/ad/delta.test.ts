import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Attribute, Change } from 'ldapts';
import type { LdapConnectorConfig } from '../../../src/config/schema.js';
import { createAdConnector } from '../../../src/connectors/ad/index.js';
import { tombstoneOriginalDn } from '../../../src/connectors/ad/delta.js';
import type { DeltaChange, SourceConnector, SourceObject } from '../../../src/connectors/types.js';
import { isIdsyncError } from '../../../src/core/errors.js';
import { normalizeDn } from '../../../src/ldap/dn.js';
import { skipUnless } from '../../helpers/integration.js';
import { seedAdUsers, useSambaDC, type SambaDC, type SeededAd } from '../../helpers/samba.js';

type AdCfg = LdapConnectorConfig & { type: 'ad' };

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

const key = (ch: DeltaChange): string =>
  ch.kind === 'upsert' ? `upsert ${ch.object.anchor} ${normalizeDn(ch.object.dn)}` : `delete ${ch.anchor} ${ch.dn ? normalizeDn(ch.dn) : ''}`;

describe('AD tombstone DNs (unit)', () => {
  it('rebuilds the original DN from a tombstone DN and lastKnownParent', () => {
    assert.equal(
      tombstoneOriginalDn('CN=bob\\0ADEL:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0,CN=Deleted Objects,DC=lab,DC=test', 'OU=x,DC=lab,DC=test'),
      'CN=bob,OU=x,DC=lab,DC=test',
    );
    assert.equal(tombstoneOriginalDn('CN=bob,OU=x,DC=lab,DC=test', 'OU=x,DC=lab,DC=test'), undefined);
  });
});

describe('AD delta import against a real Samba AD DC (uSNChanged + tombstones)', { skip: skipUnless('samba') }, () => {
  let dc: SambaDC;
  let seeded: SeededAd;
  let outOu: string;
  const OU = 'idsync-ad-delta';
  const secret = async (): Promise<string> => dc.adminPassword;
  const cfg = (extra: Partial<AdCfg> = {}): AdCfg => ({
    type: 'ad',
    name: 'corp',
    url: dc.url,
    bindDn: dc.adminUpn,
    baseDn: dc.baseDn,
    tls: { startTls: false, insecureSkipVerify: false },
    scope: { include: [seeded.ouDn], exclude: [outOu] },
    userFilter: '(&(objectCategory=person)(objectClass=user)(!(description=excluded)))',
    pageSize: 2,
    timeoutMs: 15000,
    ...extra,
  });
  /** objectGUID (base64) of every object under the test OU, by lower-case CN. */
  const anchors = new Map<string, string>();
  async function readAnchors(): Promise<void> {
    const c = await dc.client();
    try {
      const r = await c.search(seeded.ouDn, { scope: 'sub', filter: '(|(objectClass=user)(objectClass=group))', attributes: ['cn', 'objectGUID'], explicitBufferAttributes: ['objectGUID'] });
      for (const e of r.searchEntries) anchors.set(String(e.cn).toLowerCase(), (e.objectGUID as Buffer).toString('base64'));
    } finally {
      await c.unbind();
    }
  }

  before(async () => {
    dc = await useSambaDC();
    seeded = await seedAdUsers(dc, { ou: OU, users: 6, groups: 2 });
    outOu = `OU=out,${seeded.ouDn}`;
    const c = await dc.client();
    try {
      await c.add(outOu, { objectClass: ['top', 'organizationalUnit'], ou: 'out' });
      await c.add(`CN=dltoutsider,${outOu}`, { objectClass: ['top', 'person', 'organizationalPerson', 'user'], sAMAccountName: 'dltoutsider', userAccountControl: '544' });
    } finally {
      await c.unbind();
    }
    await readAnchors();
  });
  after(() => dc?.stop());

  it('returns exactly the changes since the watermark, then nothing; the watermark advances', async (t) => {
    const conn = createAdConnector(cfg(), secret);
    const c = await dc.client();
    try {
      const wm0 = await conn.currentWatermark!();
      const w = JSON.parse(wm0) as Record<string, string>;
      assert.equal(w.v, 1 as unknown as string);
      assert.equal(w.type, 'ad');
      assert.match(w.usn ?? '', /^\d+$/);
      assert.match(w.dsa ?? '', /^CN=NTDS Settings,/i);
      assert.match(w.invocationId ?? '', /^[0-9a-f-]{36}$/);
      assert.equal((await full(conn)).length, 8); // 6 users + 2 groups (the outsider is excluded)

      const [u0, u1, u2, u3, , u5] = seeded.users.map((u) => u.dn);
      const [g0] = seeded.groups.map((g) => g.dn);
      const newDn = `CN=dltnew,${seeded.ouDn}`;
      await c.add(newDn, { objectClass: ['top', 'person', 'organizationalPerson', 'user'], sAMAccountName: 'dltnew', userAccountControl: '544' }); // add
      await c.modify(u0!, new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: ['Boss'] }) })); // modify
      await c.modifyDN(u1!, `CN=dltrenamed,${seeded.ouDn}`); // rename
      await c.modifyDN(u2!, `CN=${seeded.users[2]!.sAMAccountName},${outOu}`); // move out of scope
      await c.modifyDN(`CN=dltoutsider,${outOu}`, `CN=dltoutsider,${seeded.ouDn}`); // move into scope
      await c.del(u3!); // delete
      await c.modify(u5!, new Change({ operation: 'replace', modification: new Attribute({ type: 'description', values: ['excluded'] }) })); // leaves the filter
      await c.modify(g0!, [
        new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [newDn] }) }),
        new Change({ operation: 'delete', modification: new Attribute({ type: 'member', values: [u0!] }) }),
      ]); // membership

      const { changes, watermark: wm1 } = await drain(conn, wm0);
      await readAnchors();
      const known = new Set(anchors.values());
      const mine = changes.filter((ch) => (ch.kind === 'upsert' ? known.has(ch.object.anchor) : known.has(ch.anchor)));
      for (const ch of changes) if (ch.kind === 'upsert') assert.ok(known.has(ch.object.anchor), `unexpected upsert ${key(ch)}`);
      const a = (cn: string): string => anchors.get(cn.toLowerCase()) ?? `?${cn}`;
      const sam = (i: number): string => seeded.users[i]!.sAMAccountName;
      const expected = [
        `upsert ${a('dltnew')} ${newDn}`,
        `upsert ${a(sam(0))} ${u0}`,
        `upsert ${a('dltrenamed')} CN=dltrenamed,${seeded.ouDn}`,
        `delete ${a(sam(2))} CN=${sam(2)},${outOu}`,
        `upsert ${a('dltoutsider')} CN=dltoutsider,${seeded.ouDn}`,
        `delete ${a(sam(3))} ${u3}`,
        `delete ${a(sam(5))} ${u5}`,
        `upsert ${a(seeded.groups[0]!.cn)} ${g0}`,
      ].map((e) => e.replace(/ (.*)$/, (_m, rest: string) => ` ${rest.split(' ')[0]} ${normalizeDn(rest.split(' ').slice(1).join(' '))}`));
      // Samba removes a deleted user's links: its group (g1) changes too and comes back as an upsert
      const g1 = `upsert ${a(seeded.groups[1]!.cn)} ${normalizeDn(seeded.groups[1]!.dn)}`;
      const got = mine.map(key).sort();
      if (got.includes(g1)) expected.push(g1);
      t.diagnostic(`group of the deleted user re-upserted: ${got.includes(g1)}`);
      assert.deepEqual(got, expected.sort(), JSON.stringify(changes.map(key), null, 1));
      assert.equal(changes.filter((ch) => ch.kind === 'delete' && !known.has(ch.anchor)).length, 0, 'no delete for anchors outside the test OU');

      // upserts carry the whole object exactly as a full import maps it (all members)
      const now = await full(conn);
      for (const ch of mine) if (ch.kind === 'upsert') assert.deepEqual(ch.object, now.find((o) => o.anchor === ch.object.anchor));
      const g0up = mine.find((ch) => ch.kind === 'upsert' && ch.object.anchor === a(seeded.groups[0]!.cn));
      assert.ok(g0up && g0up.kind === 'upsert');
      assert.deepEqual(g0up.object.attributes.member?.map((d) => normalizeDn(d)).sort(), [normalizeDn(newDn), normalizeDn(`CN=${sam(2)},${outOu}`), normalizeDn(seeded.users[4]!.dn)].sort());

      assert.ok(BigInt(JSON.parse(wm1).usn) > BigInt(w.usn!));
      const again = await drain(conn, wm1);
      assert.deepEqual(again.changes.map(key), [], 'a second delta returns nothing');
      assert.equal(JSON.parse(again.watermark).usn, JSON.parse(wm1).usn);
    } finally {
      await c.unbind();
      await conn.close();
    }
  });

  it('refuses unusable watermarks with WATERMARK_INVALID', async () => {
    const conn = createAdConnector(cfg(), secret);
    try {
      const invalid = (err: unknown): boolean => isIdsyncError(err, 'WATERMARK_INVALID');
      for (const bad of ['', 'x', '{}', '{"v":1,"type":"ldap","csn":"x"}', '{"v":1,"type":"ad","usn":"1)(x=*"}']) assert.throws(() => conn.deltaImport!(bad), invalid, bad);
      const wm = JSON.parse(await conn.currentWatermark!()) as Record<string, string>;
      const variants = [
        { ...wm, usn: String(BigInt(wm.usn!) + 1000000n) }, // restored DC: USN above highestCommittedUSN
        { ...wm, invocationId: '00000000-0000-0000-0000-000000000001' }, // restored DC: new invocationId
        { ...wm, dsa: wm.dsa!.replace(/CN=DC1/i, 'CN=DC2') }, // another DC
        { ...wm, at: '2020-01-01T00:00:00.000Z' }, // older than the tombstone lifetime
      ];
      for (const v of variants) await assert.rejects(drain(conn, JSON.stringify(v)), invalid, JSON.stringify(v));
    } finally {
      await conn.close();
    }
  });
});
