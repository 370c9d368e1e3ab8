import { createHash } from 'node:crypto';

/**
 * JSON with sorted object keys, so equal content always serialises (and hashes) the same.
 * Stored hashes depend on this exact text: it must not change (test/engine/stable-hash.test.ts
 * holds it to the first implementation). Plain loops and string building: it runs several
 * times per object per cycle, and the array-and-closure version was a top cost of the profile.
 */
export function stableStringify(value: unknown): string {
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

/** The hash of text made by stableStringify (when the caller keeps the text too). */
export function hashOfStable(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 32);
}

export function contentHash(value: unknown): string {
  return hashOfStable(stableStringify(value));
}
