import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { LdifConnectorConfig } from '../../../src/config/schema.js';
import { createLdifConnector, ldifEntry, parseLdifStream, writeLdif } from '../../../src/connectors/ldif/index.js';
import type { SourceObject } from '../../../src/connectors/types.js';
import { IdsyncError, isIdsyncError } from '../../../src/core/errors.js';

const fixtures = fileURLToPath(new URL('../../fixtures/ldif/', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'idsync-ldif-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function cfg(path: string, extra: Partial<LdifConnectorConfig> = {}): LdifConnectorConfig {
  return { type: 'ldif', name: 'hr', path, anchorAttribute: 'entryUUID', scope: { include: [], exclude: [] }, ...extra };
}

async function importAll(c: LdifConnectorConfig, base = fixtures): Promise<SourceObject[]> {
  const conn = createLdifConnector(c, { resolvePath: (p) => resolve(base, p) });
  const out: SourceObject[] = [];
  for await (const page of conn.fullImport()) out.push(...page);
  await conn.close();
  return out;
}

async function expectParseError(text: string, line: number, pattern: RegExp): Promise<void> {
  const name = `case-${Math.random().toString(36).slice(2)}.ldif`;
  writeFileSync(join(tmp, name), text);
  await assert.rejects(importAll(cfg(name), tmp), (err: unknown) => {
    assert.ok(isIdsyncError(err, 'LDIF_PARSE_ERROR'), `expected LDIF_PARSE_ERROR, got ${String(err)}`);
    assert.ok(err.message.startsWith(`${name}:${line}: `), `message "${err.message}" should start with ${name}:${line}:`);
    assert.match(err.message, pattern);
    assert.equal(err.details.line, line);
    assert.equal(err.details.file, join(tmp, name));
    return true;
  });
}

describe('LDIF connector: valid files', () => {
  it('reads users and groups, ignores OUs and the domain, and keeps file order', async () => {
    const objs = await importAll(cfg('directory.ldif'));
    assert.deepEqual(
      objs.map((o) => [o.objectType, o.dn]),
      [
        ['user', 'uid=alice,ou=people,dc=lab,dc=test'],
        ['user', 'uid=björn,ou=people,dc=lab,dc=test'],
        ['user', 'uid=carol,ou=contractors,dc=lab,dc=test'],
        ['group', 'cn=staff,ou=groups,dc=lab,dc=test'],
        ['group', 'cn=admins,ou=groups,dc=lab,dc=test'],
      ],
    );
  });

  it('unfolds lines, decodes base64 values and DNs, keeps attribute options, anchors on entryUUID', async () => {
    const [alice, bjorn] = await importAll(cfg('directory.ldif'));
    assert.ok(alice && bjorn);
    assert.equal(alice.anchor, '6f1c2a3e-0d6b-4c1e-9b9a-1a2b3c4d5e6f');
    assert.equal(alice.attributes.description?.[0], 'a description that is long enough to be folded over more than one line by a conforming writer');
    assert.deepEqual(alice.attributes.givenname, ['Alicé']);
    assert.deepEqual(alice.attributes['cn;lang-fr'], ['Alice Smith-Dupont']);
    assert.deepEqual(alice.attributes.objectclass, ['top', 'inetOrgPerson']);
    assert.equal(bjorn.dn, 'uid=björn,ou=people,dc=lab,dc=test');
    assert.deepEqual(bjorn.attributes.uid, ['björn']);
  });

  it('strips the optional uid suffix of uniqueMember', async () => {
    const objs = await importAll(cfg('directory.ldif'));
    const admins = objs.find((o) => o.attributes.cn?.[0] === 'admins');
    assert.deepEqual(admins?.attributes.uniquemember, ['uid=alice,ou=people,dc=lab,dc=test']);
  });

  it('applies include/exclude scope with DN normalisation', async () => {
    const inc = await importAll(cfg('directory.ldif', { scope: { include: ['OU=People, DC=LAB,DC=test'], exclude: [] } }));
    assert.deepEqual(inc.map((o) => o.attributes.uid?.[0]), ['alice', 'björn']);
    const exc = await importAll(cfg('directory.ldif', { scope: { include: [], exclude: ['ou=Contractors,dc=lab,dc=test', 'ou=groups,dc=lab,dc=test'] } }));
    assert.deepEqual(exc.map((o) => o.dn), ['uid=alice,ou=people,dc=lab,dc=test', 'uid=björn,ou=people,dc=lab,dc=test']);
  });

  it('reads an AD export anchored on objectGUID (base64 or GUID text), skipping computers', async () => {
    const objs = await importAll(cfg('ad-export.ldif', { anchorAttribute: 'objectGUID' }));
    assert.deepEqual(objs.map((o) => o.attributes.samaccountname?.[0] ?? o.attributes.cn?.[0]), ['dana', 'fox', 'X-Files']);
    const [dana, fox, group] = objs;
    assert.equal(dana?.anchor, Buffer.from('4d3c1b2a6f5e8079a1b2c3d4e5f60718', 'hex').toString('base64'));
    assert.deepEqual(dana?.attributes.objectguid, ['2a1b3c4d-5e6f-7980-a1b2-c3d4e5f60718']);
    assert.deepEqual(dana?.attributes.objectsid, ['S-1-5-21-3623741895-3361037436-30296980-1013']);
    assert.deepEqual(dana?.attributes.useraccountcontrol, ['514']);
    assert.equal(fox?.anchor, Buffer.from('00112233445566778899aabbccddee00', 'hex').toString('base64'));
    assert.equal(group?.objectType, 'group');
    assert.equal(group?.attributes.member?.length, 2);
  });

  it('test() succeeds on a valid file and fails with LDIF_NOT_FOUND on a missing one', async () => {
    await createLdifConnector(cfg('directory.ldif'), { resolvePath: (p) => resolve(fixtures, p) }).test();
    const missing = createLdifConnector(cfg('nope.ldif'), { resolvePath: (p) => resolve(fixtures, p) });
    await assert.rejects(missing.test(), (err: unknown) => isIdsyncError(err, 'LDIF_NOT_FOUND') && /nope\.ldif/.test(err.message));
  });

  it('streams pages of at most 1000 objects', async () => {
    const n = 2500;
    writeFileSync(
      join(tmp, 'big.ldif'),
      writeLdif(Array.from({ length: n }, (_, i) => ({ dn: `uid=u${i},ou=people,dc=lab,dc=test`, attributes: { objectClass: 'inetOrgPerson', uid: `u${i}`, cn: `U ${i}`, sn: 'U', entryUUID: `uuid-${i}` } }))),
    );
    const conn = createLdifConnector(cfg('big.ldif'), { resolvePath: (p) => join(tmp, p) });
    const sizes: number[] = [];
    for await (const page of conn.fullImport()) sizes.push(page.length);
    assert.deepEqual(sizes, [1000, 1000, 500]);
  });
});

describe('LDIF parser: malformed input gives file:line', () => {
  it('a line without a colon', () =>
    expectParseError('version: 1\n\ndn: uid=a,dc=t\nobjectClass: inetOrgPerson\nthis line is wrong\n', 5, /expected 'attribute: value' but found "this line is wrong"/));

  it('a record not starting with dn:', () => expectParseError('\n\ncn: x\nsn: y\n', 3, /expected 'dn: <distinguished name>'/));

  it('an invalid base64 value', () => expectParseError('dn: uid=a,dc=t\nobjectClass: inetOrgPerson\ncn:: @@@not base64\n', 3, /invalid base64/));

  it('a URL value (attr:< file://...) is refused', () => expectParseError('dn: uid=a,dc=t\njpegPhoto:< file:///etc/passwd\n', 2, /URL values .* not supported/));

  it('a modify change record', () => expectParseError('version: 1\n\ndn: uid=a,dc=t\nchangetype: modify\nreplace: cn\ncn: b\n', 4, /changetype: modify.*not supported/));

  it('a continuation line at the start of a record', () => expectParseError('dn: uid=a,dc=t\nobjectClass: person\nentryUUID: 1\n\n continued\n', 5, /continuation line/));

  it('a second dn in one record (missing blank line)', () => expectParseError('dn: uid=a,dc=t\nobjectClass: person\ndn: uid=b,dc=t\n', 3, /second "dn:"/));

  it('an invalid attribute name', () => expectParseError('dn: uid=a,dc=t\nbad_name: x\n', 2, /not a valid attribute name/));

  it('an unsupported version', () => expectParseError('version: 2\n\ndn: uid=a,dc=t\n', 1, /unsupported LDIF version/));

  it('a user without the anchor attribute is reported at its dn line', () =>
    expectParseError('version: 1\n\n# x\ndn: uid=a,dc=t\nobjectClass: inetOrgPerson\ncn: a\nsn: a\n', 4, /has no entryUUID/));

  it('two entries with the same anchor', () =>
    expectParseError('dn: uid=a,dc=t\nobjectClass: person\nentryUUID: 1\n\ndn: uid=b,dc=t\nobjectClass: person\nentryUUID: 1\n', 5, /same entryUUID as the entry at line 1/));

  it('an invalid DN when scope is set', async () => {
    writeFileSync(join(tmp, 'bad-dn.ldif'), 'dn: uid=a,dc=t\nobjectClass: person\nentryUUID: 1\n\ndn: uid=a"b,dc=t\nobjectClass: person\nentryUUID: 2\n');
    await assert.rejects(importAll(cfg('bad-dn.ldif', { scope: { include: ['dc=t'], exclude: [] } }), tmp), (err: unknown) => err instanceof IdsyncError && err.message.startsWith('bad-dn.ldif:5: invalid DN'));
  });
});

describe('writeLdif / ldifEntry', () => {
  it('base64-encodes unsafe values and folds long lines; the parser reads them back', async () => {
    const long = 'x'.repeat(200);
    const text = writeLdif([
      {
        dn: 'cn=Zoë,dc=t',
        attributes: { objectClass: ['person'], cn: 'Zoë', sn: ' leading space', description: 'trailing ', l: ':colon', st: '<angle', street: 'line1\nline2', postalCode: long, photo: Buffer.from([0, 1, 2, 255]), empty: '' },
      },
    ]);
    assert.match(text, /^version: 1\n\ndn:: /);
    assert.match(text, /\nsn:: /);
    assert.match(text, /\ndescription:: /);
    assert.match(text, /\nl:: /);
    assert.match(text, /\nst:: /);
    assert.match(text, /\nstreet:: /);
    assert.match(text, /\nphoto:: AAEC\/w==/);
    assert.ok(text.split('\n').every((l) => l.length <= 76), 'lines are folded at 76 columns');
    const recs = [];
    for await (const r of parseLdifStream(Readable.from([text]), { name: 'mem' })) recs.push(r);
    assert.equal(recs.length, 1);
    const attrs = Object.fromEntries(recs[0]!.attributes.map((a) => [a.name, Buffer.isBuffer(a.value) ? a.value : a.value]));
    assert.equal(recs[0]!.dn, 'cn=Zoë,dc=t');
    assert.equal(attrs.sn?.toString(), ' leading space');
    assert.equal(attrs.description?.toString(), 'trailing ');
    assert.equal(attrs.street?.toString(), 'line1\nline2');
    assert.equal(attrs.postalCode, long);
    assert.deepEqual(attrs.photo, Buffer.from([0, 1, 2, 255]));
    assert.equal(attrs.empty, '');
  });

  it('ldifEntry writes one record without version', () => {
    assert.equal(ldifEntry('cn=a,dc=t', { cn: 'a', member: ['cn=x', 'cn=y'], skip: undefined }), 'dn: cn=a,dc=t\ncn: a\nmember: cn=x\nmember: cn=y');
  });
});
