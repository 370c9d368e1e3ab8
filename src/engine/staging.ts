/**
 * What staging derives from a source object before it touches the connector space: the object
 * cleaned (no secret attribute, no control character), its member rows, its content hash, and —
 * for a first import's insert — its normalised DN and its attributes as stored. Pure (no store),
 * so the full import's reader thread (reader/) does it beside the LDAP decoding, and the engine's
 * event loop only writes; connector-space.ts does the same on the event loop for every other page.
 */
import type { SourceObject } from '../connectors/types.js';
import { cleanAttributeValues, stripControlCharacters } from '../core/attribute-values.js';
import { dropSecretAttributes } from '../core/secret-attributes.js';
import { normalizeDn, type DnUnicode } from '../ldap/dn.js';
import { extractPasswordAttributes } from '../passwords/sources/ldap.js';
import { contentHash } from './stable-hash.js';

const MEMBER_ATTRIBUTES = ['member', 'uniquemember'] as const;

/**
 * A DN of plain `type=value` RDNs: ASCII letters, digits and `._@-` in values, no spaces, escapes,
 * quotes, multi-valued RDNs or OIDs. Its normal form is itself lower-cased (normalizeDn decodes,
 * folds case and white space and re-escapes: none of which applies), so the parser is skipped:
 * most DNs of a directory look like this, and the parse was a visible cost per object.
 */
const PLAIN_DN = /^[A-Za-z][A-Za-z0-9-]*=[A-Za-z0-9._@-]+(?:,[A-Za-z][A-Za-z0-9-]*=[A-Za-z0-9._@-]+)*$/;

export function safeNormalizeDn(dn: string, unicode: DnUnicode = 'nfc'): string {
  if (PLAIN_DN.test(dn)) return dn.toLowerCase();
  try {
    return normalizeDn(dn, unicode);
  } catch {
    return dn.toLowerCase();
  }
}

/** How a connector kind's directory compares DNs: AD keeps Unicode code points apart. */
export function dnUnicodeOf(kind: string): DnUnicode {
  return kind === 'ad' ? 'exact' : 'nfc';
}

/** A group's member rows: the member's normalised DN, and its anchor when the source gave one. */
export function memberRows(o: SourceObject, unicode: DnUnicode = 'nfc'): { dn: string; anchor: string | null }[] {
  const out = new Map<string, string | null>();
  if (o.members) {
    for (const m of o.members) out.set(safeNormalizeDn(m.dn, unicode), m.anchor ?? null);
  } else {
    for (const a of MEMBER_ATTRIBUTES) for (const dn of o.attributes[a] ?? []) out.set(safeNormalizeDn(dn, unicode), null);
  }
  return [...out].map(([dn, anchor]) => ({ dn, anchor }));
}

/** An object of a page with what staging derives from it (computed once). */
export interface PreparedObject {
  o: SourceObject;
  members: { dn: string; anchor: string | null }[];
  hash: string;
  /** Control characters removed from it: how many values, and the first attribute (event 6006). */
  cleaned?: { values: number; first: string };
  /** Its normalised DN and its attributes as the connector space stores them, when computed ahead (the reader thread). */
  dnNorm?: string;
  attrs?: string;
}

/**
 * Cleans an object in place (secrets, control characters) and computes its member rows and content
 * hash; `ahead` also its normalised DN and stored attributes (what an insert writes), which an
 * unchanged object of a later import never needs.
 */
export function prepareObject(o: SourceObject, unicode: DnUnicode, ahead = false): PreparedObject {
  // The last gate before the connector space: whatever path brought the object here, no secret
  // attribute is staged (the import step took any NT hash out already).
  dropSecretAttributes(o.attributes);
  // The DN goes through the same rule as member values, so references to it still match.
  const dn = stripControlCharacters(o.dn);
  const c = cleanAttributeValues(o.attributes);
  if (dn !== o.dn) {
    o.dn = dn;
    c.values++;
    c.first ??= 'dn';
  }
  const members = o.objectType === 'group' ? memberRows(o, unicode) : [];
  // Member anchors are part of the content: a member deleted and re-created under the same DN
  // is another member.
  // Keys in sorted order: stableStringify's fast path (the text, and so the hash, is the same).
  const hash = contentHash({ a: sortedAttributes(o.attributes), dn: o.dn, ...(o.members ? { m: members.map((m) => `${m.anchor ?? ''}|${m.dn}`).sort() } : {}), t: o.objectType });
  const p: PreparedObject = { o, members, hash };
  if (c.first !== undefined) p.cleaned = { values: c.values, first: c.first };
  if (ahead) {
    p.dnNorm = safeNormalizeDn(o.dn, unicode);
    p.attrs = JSON.stringify(o.attributes);
  }
  return p;
}

/** A full import's page as staging takes it: the objects prepared, and the NT hashes taken out of them first. */
export interface PreparedPage {
  objects: PreparedObject[];
  /** For the password pipeline (never staged). */
  hashes: { anchor: string; nt: Buffer }[];
}

/** NT hashes leave the objects (extractPasswordAttributes removes them in place) before anything else. */
export function takePasswords(objects: readonly SourceObject[]): { anchor: string; nt: Buffer }[] {
  const hashes: { anchor: string; nt: Buffer }[] = [];
  for (const o of objects) {
    const { nt } = extractPasswordAttributes(o);
    if (nt) hashes.push({ anchor: o.anchor, nt });
  }
  return hashes;
}

/** A full import's page: its hashes out first, then every object prepared (`ahead`: see prepareObject). */
export function preparePage(objects: SourceObject[], unicode: DnUnicode, ahead = false): PreparedPage {
  const hashes = takePasswords(objects);
  return { objects: objects.map((o) => prepareObject(o, unicode, ahead)), hashes };
}

function sortedAttributes(a: Record<string, string[]>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  // A single value is sorted already: only lists are copied (the object's own arrays stay as the source gave them).
  for (const k of Object.keys(a).sort()) {
    const v = a[k]!;
    out[k] = v.length < 2 ? v : [...v].sort();
  }
  return out;
}
