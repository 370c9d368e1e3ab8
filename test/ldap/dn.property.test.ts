/**
 * Property-based tests of the DN parser (RFC 4514), on random inputs (fast-check; a failure
 * prints the seed and the smallest failing DN; IDSYNC_FC_SEED replays one run).
 *  - escapeDnValue ∘ parse round-trips every value, whatever characters it holds;
 *  - formatDn ∘ parseDn keeps the meaning (the same normal form) and is stable;
 *  - the normal form is idempotent, and case / spacing variants of a DN share it;
 *  - anything at all either parses or throws LDAP_INVALID_DN — never another error.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isIdsyncError } from '../../src/core/errors.js';
import { escapeDnValue, formatDn, normalizeDn, parseDn, type Rdn } from '../../src/ldap/dn.js';

/** No lone surrogate (String#isWellFormed is ES2024, beyond this project's lib setting). */
const wellFormed = (s: string): boolean => !/\p{Surrogate}/u.test(s);

const params = { numRuns: 400, ...(process.env.IDSYNC_FC_SEED ? { seed: Number(process.env.IDSYNC_FC_SEED) } : {}) };

const attrType = fc.oneof(
  fc.constantFrom('cn', 'CN', 'ou', 'dc', 'uid', 'o', 'l', 'c', 'street', 'mail'),
  fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,12}$/),
  fc.stringMatching(/^[12]\.(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,3})){1,4}$/),
);
/** Values with the characters that need escaping, controls, non-BMP and combining marks. */
const value = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.string({ unit: fc.constantFrom(',', '+', '"', '\\', '<', '>', ';', '=', '#', ' ', '\u0000', '\u001b', 'a', 'é', '😀', '\u0301'), maxLength: 16 }),
);
const ava = fc.record({ type: attrType, value });
const rdns = fc.array(fc.array(ava, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 6 });

/** A DN string written from RDNs by hand, with escapeDnValue for each value. */
const write = (r: Rdn[]): string => r.map((rdn) => rdn.map((a) => `${a.type}=${escapeDnValue(a.value)}`).join('+')).join(',');

function rethrowUnlessInvalidDn(err: unknown): void {
  if (!isIdsyncError(err, 'LDAP_INVALID_DN')) throw err;
}

describe('DN parser properties', () => {
  test('escapeDnValue then parseDn gives back every value exactly (lone surrogates aside)', () => {
    fc.assert(
      fc.property(rdns, (r) => {
        fc.pre(r.every((rdn) => rdn.every((a) => wellFormed(a.value))));
        const parsed = parseDn(write(r));
        assert.equal(parsed.length, r.length);
        parsed.forEach((rdn, i) => {
          assert.deepEqual(
            rdn.map((a) => [a.type, a.value]),
            r[i]!.map((a) => [a.type, a.value]),
          );
        });
      }),
      params,
    );
  });

  test('formatDn(parseDn(dn)) means the same DN, and formatting again changes nothing', () => {
    fc.assert(
      fc.property(rdns, (r) => {
        fc.pre(r.every((rdn) => rdn.every((a) => wellFormed(a.value))));
        const dn = write(r);
        const formatted = formatDn(parseDn(dn));
        assert.equal(normalizeDn(formatted), normalizeDn(dn));
        assert.equal(formatDn(parseDn(formatted)), formatted);
      }),
      params,
    );
  });

  test('the normal form is idempotent and ignores case and spaces around separators', () => {
    fc.assert(
      fc.property(rdns, fc.boolean(), (r, upper) => {
        fc.pre(r.every((rdn) => rdn.every((a) => wellFormed(a.value))));
        const dn = write(r);
        const n = normalizeDn(dn);
        assert.equal(normalizeDn(n), n);
        const variant = r
          .map((rdn) => rdn.map((a) => `${upper ? a.type.toUpperCase() : a.type} = ${escapeDnValue(a.value)}`).join(' + '))
          .join(' , ');
        // Spaces around "=" "+" "," are insignificant only when the value does not start/end with
        // an escaped space, which escapeDnValue guarantees.
        assert.equal(normalizeDn(variant), n);
      }),
      params,
    );
  });

  test('any string parses or is refused as LDAP_INVALID_DN, never another error', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: fc.constantFrom('a', '=', ',', '+', '\\', '#', '"', ' ', '0', 'f', ';', '<', '\u0000'), maxLength: 40 })), (s) => {
        try {
          const r = parseDn(s);
          // What parses can be formatted and parsed again to the same normal form.
          assert.equal(normalizeDn(formatDn(r)), normalizeDn(s));
        } catch (err) {
          rethrowUnlessInvalidDn(err);
        }
      }),
      params,
    );
  });

  test('very long and deeply nested inputs are refused quickly, not by a crash', () => {
    for (const s of ['cn=' + 'a'.repeat(20_000), Array.from({ length: 1000 }, () => 'ou=a').join(','), '\\'.repeat(50_000), '='.repeat(50_000)]) {
      assert.throws(() => parseDn(s), (err: unknown) => isIdsyncError(err, 'LDAP_INVALID_DN'));
    }
  });
});
