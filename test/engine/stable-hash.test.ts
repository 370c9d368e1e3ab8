/**
 * stableStringify's text is what every stored hash (connector space, metaverse, export state) was
 * computed from: the faster implementation must give exactly the text of the first one, on seeded
 * random values (fast-check; IDSYNC_PROPERTY_SEED / IDSYNC_PROPERTY_RUNS).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { contentHash, hashOfStable, stableStringify } from '../../src/engine/stable-hash.js';

/** The first implementation (engine/stable-hash.ts before issue 13), kept as the reference. */
function reference(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(reference).join(',')}]`;
  if (value && typeof value === 'object') {
    const keys = Object.keys(value as Record<string, unknown>).sort();
    return `{${keys
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${reference((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

const seed = process.env.IDSYNC_PROPERTY_SEED ? Number(process.env.IDSYNC_PROPERTY_SEED) : undefined;
const numRuns = Number(process.env.IDSYNC_PROPERTY_RUNS ?? 500);

/** The same value with every plain object's keys inserted in sorted order (stableStringify's fast path). */
function sortedDeep(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortedDeep);
  if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortedDeep((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

class Thing {
  b = 1;
  a = 2;
}

test('stableStringify gives the text of the reference implementation on random values', () => {
  const value = fc.letrec((tie) => ({
    leaf: fc.oneof(
      fc.string(),
      fc.string({ unit: 'grapheme' }),
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.constant(undefined),
      fc.date({ noInvalidDate: true }),
      fc.constant(new Thing()),
      fc.constant(Object.assign(Object.create(null) as object, { a: 1, b: 'x' })),
      fc.constantFrom({ toJSON: () => 'x' }, { 10: 'a', 9: 'b' }, { 1: 'a', b: 'c' }, [1, undefined, 3]),
    ),
    node: fc.oneof({ depthSize: 'small' }, tie('leaf'), fc.array(tie('node'), { maxLength: 5 }), fc.dictionary(fc.string(), tie('node'), { maxKeys: 6 })),
  })).node;
  fc.assert(
    // Half the values with sorted keys: those take the native serialiser, which must write the same text.
    fc.property(value, fc.boolean(), (v0, sort) => {
      const v = sort ? sortedDeep(v0) : v0;
      assert.equal(stableStringify(v), reference(v));
    }),
    { numRuns, ...(seed !== undefined ? { seed } : {}) },
  );
});

test('contentHash is the hash of the stable text, independent of key order', () => {
  const a = { b: [1, 'x', { z: null, a: true }], a: 'é', u: undefined };
  const b = { a: 'é', b: [1, 'x', { a: true, z: null }] };
  assert.equal(stableStringify(a), '{"a":"é","b":[1,"x",{"a":true,"z":null}]}');
  assert.equal(contentHash(a), contentHash(b));
  assert.equal(contentHash(a), hashOfStable(stableStringify(b)));
});
