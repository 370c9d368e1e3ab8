import { createHash } from 'node:crypto';

/**
 * JSON with sorted object keys, so equal content always serialises (and hashes) the same.
 * Stored hashes depend on this exact text: it must not change (test/engine/stable-hash.test.ts
 * holds it to the first implementation). Plain loops and string building: it runs several
 * times per object per cycle, and the array-and-closure version was a top cost of the profile.
 */
export function stableStringify(value: unknown): string {
  // Already in canonical order (the engine builds its objects with sorted keys): the native
  // serialiser writes the same text several times faster.
  if (value !== undefined && canonical(value)) return JSON.stringify(value);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      out += stableStringify(value[i]);
    }
    return out + ']';
  }
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    const keys = Object.keys(o).sort();
    let out = '{';
    let first = true;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const v = o[k];
      if (v === undefined) continue;
      if (!first) out += ',';
      first = false;
      out += JSON.stringify(k) + ':' + stableStringify(v);
    }
    return out + '}';
  }
  return JSON.stringify(value ?? null);
}

/**
 * Whether JSON.stringify writes exactly stableStringify's text for v: JSON primitives, arrays,
 * and plain objects whose own keys are in sorted order already, all the way down. (undefined is
 * skipped as an object value and written null in an array by both; a Date, a class instance or a
 * function is not canonical: JSON.stringify would call toJSON or drop it.)
 */
function canonical(v: unknown): boolean {
  switch (typeof v) {
    case 'string':
    case 'boolean':
    case 'number':
    case 'undefined':
      return true;
    case 'object': {
      if (v === null) return true;
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) if (!canonical(v[i])) return false;
        return true;
      }
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) return false;
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o);
      for (let i = 0; i < keys.length; i++) {
        if (i > 0 && !(keys[i - 1]! < keys[i]!)) return false;
        if (!canonical(o[keys[i]!])) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

/** The hash of text made by stableStringify (when the caller keeps the text too). */
export function hashOfStable(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 32);
}

export function contentHash(value: unknown): string {
  return hashOfStable(stableStringify(value));
}
