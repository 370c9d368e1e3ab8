/**
 * The full import's reader thread (src/engine/reader/) against a real slapd: its pages must be the
 * event loop's own — the connector's fullImport() prepared by staging.ts on this thread — on a
 * seeded random directory (control characters, several values, NT hashes, groups of both kinds,
 * small pages); errors come back with their class and code; a page is read only when asked for
 * (the password hashes in it are dated by that); and an import stopped early or closed leaves
 * the next one working.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LdapConnectorConfig } from '../../../src/config/schema.js';
import { createLdapConnector } from '../../../src/connectors/ldap/index.js';
import { IdsyncError, isIdsyncError } from '../../../src/core/errors.js';
import { fullImportReader } from '../../../src/engine/reader/index.js';
import { dnUnicodeOf, prepareObject, takePasswords, type PreparedPage } from '../../../src/engine/staging.js';
import { LdapBindError, LdapUnreachableError } from '../../../src/ldap/errors.js';
import { skipUnless } from '../../helpers/integration.js';
import { prng } from '../../helpers/prng.js';
import { freePort, ldapConfigFor, startSlapd, type Slapd } from '../../helpers/slapd.js';

type LdapCfg = LdapConnectorConfig & { type: 'ldap' };
const SEED = Number(process.env.IDSYNC_TEST_SEED ?? 20261207);
const P = 'ou=people,dc=lab,dc=test';
const G = 'ou=groups,dc=lab,dc=test';
const USERS = 120;

const cfgFor = (s: Pick<Slapd, 'url' | 'adminDn' | 'baseDn'>, extra: Partial<LdapCfg> = {}): LdapCfg => ldapConfigFor(s, { pageSize: 17, ...extra });

/** A value as LDIF writes it: base64 when it holds what a plain line cannot. */
const line = (attr: string, value: string): string =>
  /^[\x20-\x7e]*$/.test(value) && !/^[ :<]/.test(value) && !value.endsWith(' ') ? `${attr}: ${value}\n` : `${attr}:: ${Buffer.from(value).toString('base64')}\n`;

function randomDirectory(rand: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const hex = () => Array.from({ length: 32 }, () => '0123456789ABCDEF'[Math.floor(rand() * 16)]).join('');
  const entries: string[] = [];
  for (let i = 0; i < USERS; i++) {
    const nt = rand() < 0.5;
    let e = `dn: uid=u${i},${P}\nobjectClass: inetOrgPerson\n${nt ? 'objectClass: sambaSamAccount\n' : ''}uid: u${i}\ncn: User ${i}\nsn: U${i}\n`;
    if (nt) e += `sambaSID: S-1-5-21-1-2-3-${1000 + i}\nsambaNTPassword: ${hex()}\n`;
    if (rand() < 0.4) e += line('description', pick(['plain', 'tab\there', 'bell\u0007 ring', 'nul\u0000 byte', 'Zoë’s', 'esc\u001b[0m']));
    const mails = Math.floor(rand() * 3);
    for (let m = 0; m < mails; m++) e += `mail: u${i}.${m}@lab.test\n`;
    if (rand() < 0.3) e += `ou: ${pick(['R&D', 'Sales', 'Ops'])}\nou: ${pick(['Berlin', 'Paris'])}\n`;
    if (rand() < 0.3) e += `title: ${pick(['Engineer', 'Lead', 'Chief'])}\n`;
    entries.push(e);
  }
  for (let g = 0; g < 9; g++) {
    const unique = g % 3 === 0;
    let e = `dn: cn=g${g},${G}\nobjectClass: ${unique ? 'groupOfUniqueNames' : 'groupOfNames'}\ncn: g${g}\n`;
    const members = new Set<number>();
    const n = 1 + Math.floor(rand() * 40);
    for (let k = 0; k < n; k++) members.add(Math.floor(rand() * USERS));
    for (const m of members) e += unique ? `uniqueMember: uid=u${m},${P}${rand() < 0.5 ? "#'0101'B" : ''}\n` : `member: uid=U${m}, ${P}\n`;
    entries.push(e);
  }
  return entries.join('\n');
}

/** What staging gets from the event loop's own read: the connector's pages, prepared here. */
async function onTheLoop(cfg: LdapCfg, secret: () => Promise<string>): Promise<PreparedPage[]> {
  const connector = createLdapConnector(cfg, secret);
  const pages: PreparedPage[] = [];
  try {
    for await (const objects of connector.fullImport()) {
      const hashes = takePasswords(objects);
      pages.push({ objects: objects.map((o) => prepareObject(o, dnUnicodeOf('ldap'), true)), hashes });
    }
  } finally {
    await connector.close();
  }
  return pages;
}

async function onTheReader(cfg: LdapCfg, secret: () => Promise<string | undefined>): Promise<PreparedPage[]> {
  const reader = fullImportReader(cfg, secret)!;
  const pages: PreparedPage[] = [];
  try {
    for await (const page of reader.pages()) pages.push(page);
  } finally {
    await reader.close();
  }
  return pages;
}

describe('the full import read on its own thread (real slapd)', { skip: skipUnless('slapd') }, () => {
  let ldap: Slapd;
  const secret = async (): Promise<string> => ldap.adminPassword;

  before(async () => {
    ldap = await startSlapd({ sambaSchema: true, seedLdif: randomDirectory(prng(SEED)) });
  });
  after(() => ldap?.stop());

  it('gives the pages the event loop would: the same objects, hashes, NT hashes and stored text, page by page', async () => {
    const cfg = cfgFor(ldap);
    const mine = await onTheLoop(cfg, secret);
    const theirs = await onTheReader(cfg, secret);
    assert.ok(mine.length > 5, `several pages (${mine.length})`);
    assert.equal(theirs.length, mine.length, 'the same pages');
    let hashes = 0;
    let cleaned = 0;
    for (let i = 0; i < mine.length; i++) {
      assert.deepEqual(theirs[i]!.objects, mine[i]!.objects, `page ${i}`);
      assert.equal(theirs[i]!.hashes.length, mine[i]!.hashes.length, `page ${i}: NT hashes`);
      theirs[i]!.hashes.forEach((h, k) => {
        assert.ok(Buffer.isBuffer(h.nt), 'an NT hash arrives as a Buffer');
        assert.ok(h.nt.buffer.byteLength <= 16 * theirs[i]!.hashes.length, "NT hashes come over in a buffer of their own, not with a slab of the reader's buffer pool");
        assert.equal(h.anchor, mine[i]!.hashes[k]!.anchor);
        assert.ok(h.nt.equals(mine[i]!.hashes[k]!.nt), `page ${i}: NT hash of ${h.anchor}`);
      });
      hashes += theirs[i]!.hashes.length;
      cleaned += theirs[i]!.objects.filter((p) => p.cleaned).length;
      for (const p of theirs[i]!.objects) {
        assert.equal(p.o.attributes.sambantpassword, undefined, 'no NT hash is left in an object');
        assert.ok(p.dnNorm !== undefined && p.attrs !== undefined, 'prepared ahead');
      }
    }
    assert.ok(hashes > 20, `NT hashes came over (${hashes})`);
    assert.ok(cleaned > 0, `control characters were cleaned (${cleaned} objects)`);
    assert.equal(
      theirs.flatMap((p) => p.objects).filter((p) => p.o.objectType === 'group').reduce((n, p) => n + p.members.length, 0),
      mine.flatMap((p) => p.objects).filter((p) => p.o.objectType === 'group').reduce((n, p) => n + p.members.length, 0),
    );
  });

  it('throws what the connector throws, with its class, code and fields', async () => {
    await assert.rejects(onTheReader(cfgFor(ldap), async () => 'wrong'), (err: unknown) => {
      assert.ok(err instanceof LdapBindError, String(err));
      assert.equal(err.code, 'LDAP_BIND_FAILED');
      assert.equal(err.reason, 'invalid-credentials');
      assert.equal(err.bindDn, ldap.adminDn);
      assert.ok(!err.message.includes('wrong'), 'the password is not in the message');
      return true;
    });
    const closed = `ldap://127.0.0.1:${await freePort()}`;
    await assert.rejects(onTheReader(cfgFor({ ...ldap, url: closed }, { timeoutMs: 2000 }), secret), (err: unknown) => {
      assert.ok(err instanceof LdapUnreachableError, String(err));
      assert.equal(err.url, closed);
      return true;
    });
    await assert.rejects(onTheReader(cfgFor(ldap), async () => undefined), (err: unknown) => isIdsyncError(err, 'CREDENTIAL_MISSING'));
    // A connector that cannot even be built on the thread answers the first page with why.
    let onTheLoopError: unknown;
    try {
      createLdapConnector(cfgFor(ldap, { baseDn: 'not a DN' }), secret);
    } catch (err) {
      onTheLoopError = err;
    }
    assert.ok(onTheLoopError instanceof IdsyncError, String(onTheLoopError));
    const expected = onTheLoopError;
    await assert.rejects(onTheReader(cfgFor(ldap, { baseDn: 'not a DN' }), secret), (err: unknown) => {
      assert.ok(isIdsyncError(err, expected.code), String(err));
      assert.equal(err.message, expected.message);
      return true;
    });
  });

  it('reads a page only when it is asked for', async () => {
    const reader = fullImportReader(cfgFor(ldap, { pageSize: 5 }), secret)!;
    const it = reader.pages();
    try {
      const first = await it.next();
      assert.equal(first.done, false);
      // u7 is in the second page (entries come in the order they were added). A reader that
      // fetched ahead would have it already, without this change.
      await ldap.modify(`dn: uid=u7,${P}\nchangetype: modify\nreplace: title\ntitle: Changed after the first page\n`);
      await sleep(300);
      const second = await it.next();
      assert.equal(second.done, false);
      const u7 = (second.value as PreparedPage).objects.find((p) => p.o.attributes.uid?.[0] === 'u7');
      assert.ok(u7, 'u7 is in the second page');
      assert.deepEqual(u7.o.attributes.title, ['Changed after the first page']);
    } finally {
      await it.return(undefined);
      await reader.close();
      await ldap.modify(`dn: uid=u7,${P}\nchangetype: modify\ndelete: title\n`);
    }
  });

  it('an import stopped after a page, or closed while read, leaves the next one whole', async () => {
    const cfg = cfgFor(ldap);
    const whole = (await onTheLoop(cfg, secret)).flatMap((p) => p.objects.map((o) => o.o.anchor));
    const early = fullImportReader(cfg, secret)!;
    for await (const page of early.pages()) {
      assert.ok(page.objects.length > 0);
      break; // the engine failed on this page
    }
    assert.deepEqual((await onTheReader(cfg, secret)).flatMap((p) => p.objects.map((o) => o.o.anchor)), whole, 'after a stop');

    const closing = fullImportReader(cfg, secret)!;
    const it = closing.pages();
    await it.next();
    const pending = it.next();
    await closing.close();
    const r = await pending.then(
      (v) => ({ v }),
      (err: unknown) => ({ err }),
    );
    assert.ok('err' in r ? isIdsyncError(r.err) : r.v.done !== undefined, 'the read ends (an error or the end), it does not hang');
    assert.deepEqual((await onTheReader(cfg, secret)).flatMap((p) => p.objects.map((o) => o.o.anchor)), whole, 'after a close');
  });
});
