/**
 * Property-based tests of the LDIF reader and writer (RFC 2849), on random inputs (fast-check;
 * a failure prints the seed and the smallest counterexample; IDSYNC_FC_SEED replays one run).
 *  - parse ∘ write round-trips any entries: DNs and values with any characters (folded lines,
 *    base64 for unsafe values, binary values), attribute options kept;
 *  - any bytes at all either parse or are refused as LDIF_PARSE_ERROR with a line inside the file,
 *    never another error; the same for the conversion of what parses into source objects.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ldifRecordToObject, parseLdifStream, writeLdif, type LdifRecord, type LdifWriteEntry } from '../../../src/connectors/ldif/index.js';
import { isIdsyncError } from '../../../src/core/errors.js';

/** No lone surrogate (String#isWellFormed is ES2024, beyond this project's lib setting). */
const wellFormed = (s: string): boolean => !/\p{Surrogate}/u.test(s);

const params = { numRuns: 300, ...(process.env.IDSYNC_FC_SEED ? { seed: Number(process.env.IDSYNC_FC_SEED) } : {}) };
const src = { name: 'random.ldif' };

async function parseAll(input: string | Buffer): Promise<LdifRecord[]> {
  const out: LdifRecord[] = [];
  for await (const r of parseLdifStream(Readable.from([typeof input === 'string' ? Buffer.from(input) : input]), src)) out.push(r);
  return out;
}

const text = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: fc.constantFrom(' ', ':', '<', '\n', '\r', '\u0000', '#', '-', 'a', 'é', '😀', '\u001b'), maxLength: 20 }),
  fc.string({ minLength: 70, maxLength: 300 }), // folded over several lines
).filter(wellFormed);
/** Attribute descriptions as RFC 4512 allows them (with options), minus the names the reader reserves. */
const attrName = fc
  .tuple(fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,15}$/), fc.array(fc.stringMatching(/^[A-Za-z0-9-]{1,8}$/), { maxLength: 2 }))
  .map(([t, opts]) => [t, ...opts].join(';'))
  .filter((n) => !/^(dn|changetype|control|version)(;|$)/i.test(n));
const attrValue = fc.oneof(text, fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)));
const entry: fc.Arbitrary<LdifWriteEntry> = fc.record({
  dn: text,
  attributes: fc.dictionary(attrName, fc.array(attrValue, { minLength: 1, maxLength: 3 }), { maxKeys: 6 }),
});

/** A value as the reader returns it compared with what was written (base64 comes back as bytes). */
const same = (written: string | Buffer, read: string | Buffer): boolean =>
  Buffer.isBuffer(written) ? Buffer.isBuffer(read) && written.equals(read) : (Buffer.isBuffer(read) ? read.toString('utf8') : read) === written;

describe('LDIF reader and writer properties', () => {
  test('parse(write(entries)) gives back every DN, attribute name and value', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(entry, { minLength: 1, maxLength: 5 }), async (entries) => {
        const records = await parseAll(writeLdif(entries));
        assert.equal(records.length, entries.length);
        records.forEach((rec, i) => {
          const e = entries[i]!;
          assert.equal(rec.dn, e.dn);
          const written = Object.entries(e.attributes).flatMap(([name, v]) => (Array.isArray(v) ? v : [v]).map((value) => ({ name, value })));
          assert.equal(rec.attributes.length, written.length);
          rec.attributes.forEach((a, k) => {
            assert.equal(a.name, written[k]!.name);
            assert.ok(same(written[k]!.value as string | Buffer, a.value), `value of ${a.name}`);
          });
        });
      }),
      params,
    );
  });

  test('any bytes parse, or are refused as LDIF_PARSE_ERROR pointing at a line of the file', async () => {
    const junk = fc.oneof(
      fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)),
      fc.string({ unit: fc.constantFrom('dn: ', 'dn:: ', 'cn: x', 'cn:: QQ==', '\n', ' ', ':', '#', 'changetype: add', 'changetype: delete', 'version: 1', 'control: 1.2.3', 'uid=a,dc=b', '\r\n', '<', 'a;b: c'), maxLength: 40 }).map((s) => Buffer.from(s)),
    );
    await fc.assert(
      fc.asyncProperty(junk, async (bytes) => {
        // Line breaks as the reader (node:readline) counts them: LF, CRLF and a lone CR.
        const lines = bytes.toString('utf8').split(/\r\n|\r|\n/).length;
        try {
          await parseAll(bytes);
        } catch (err) {
          assert.ok(isIdsyncError(err, 'LDIF_PARSE_ERROR'), `a coded error, not ${String(err)}`);
          const line = err.details.line as number;
          assert.ok(Number.isInteger(line) && line >= 1 && line <= lines, `line ${line} of ${lines}`);
          assert.match(err.message, /^random\.ldif:\d+: /);
        }
      }),
      params,
    );
  });

  test('converting what parses into source objects returns, skips, or throws LDIF_PARSE_ERROR', async () => {
    const record = fc.record({
      dn: text,
      attributes: fc.array(
        fc.record({
          name: fc.oneof(attrName, fc.constantFrom('objectClass', 'objectGUID', 'objectSid', 'entryUUID', 'member', 'uniqueMember', 'userPassword;x', 'sambaNTPassword')),
          value: fc.oneof(attrValue, fc.constantFrom('inetOrgPerson', 'group', 'user', 'groupOfNames', 'computer')),
        }),
        { maxLength: 8 },
      ),
    });
    fc.assert(
      fc.property(record, fc.constantFrom('entryUUID', 'objectGUID', 'uid'), (r, anchorAttribute) => {
        const rec: LdifRecord = { dn: r.dn, line: 1, attributes: r.attributes.map((a, i) => ({ ...a, line: i + 2 })) };
        try {
          const o = ldifRecordToObject(rec, { anchorAttribute, src });
          if (o) {
            assert.ok(o.anchor.length > 0);
            for (const k of Object.keys(o.attributes)) assert.doesNotMatch(k, /^userpassword/, 'no secret attribute survives');
          }
        } catch (err) {
          assert.ok(isIdsyncError(err, 'LDIF_PARSE_ERROR'), `a coded error, not ${String(err)}`);
        }
      }),
      params,
    );
  });
});
