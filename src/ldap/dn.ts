/**
 * Distinguished names (RFC 4514) and filter values (RFC 4515).
 *
 * Directories return the same DN in many spellings: `CN=Alice,OU=People,DC=lab,DC=test`,
 * `cn=alice, ou=people,dc=lab,dc=test`, `cn=\41lice,...`. Compare DNs only through
 * `normalizeDn()` (or `isDnUnder()`), never as raw strings.
 *
 * Normal form: attribute types lower-case (OIDs kept, an `oid.` prefix dropped); values decoded,
 * lower-cased, runs of white space collapsed, leading/trailing spaces dropped (insignificant
 * for matching, RFC 4518), then re-escaped canonically (`=` escaped too); the AVAs of a
 * multi-valued RDN sorted. Every attribute used in DNs in practice (cn, ou, dc, uid, o, l, c...) has
 * case-insensitive matching, so lower-casing values is what the directories themselves do.
 *
 * Unicode is compared the way the directory does (`DnUnicode`): OpenLDAP normalises values
 * before it compares them (`cn=Zoë` and `cn=Zoe\u0308` are one entry there: the second add fails
 * with "already exists"), Active Directory compares code points (they are two entries, measured on
 * Samba 4.17). Folding them for AD merges two people into one.
 */
import { IdsyncError } from '../core/errors.js';

/** One `type=value` pair of an RDN. `value` is decoded (escapes resolved). */
export interface Ava {
  type: string;
  value: string;
  /** True when the value was written as `#<hex BER>`; `value` then holds the lower-case hex. */
  ber?: boolean;
}

/** An RDN: one or more AVAs joined with `+`. */
export type Rdn = Ava[];

/** Longest DN we accept (a DN is at most a few hundred bytes in practice). */
export const MAX_DN_LENGTH = 16 * 1024;
const MAX_RDNS = 256;

const SPECIALS = new Set([',', '+', '"', '\\', '<', '>', ';', '=']);
const HEX = /^[0-9a-fA-F]{2}$/;
const DESCR = /^[A-Za-z][A-Za-z0-9-]*$/;
const NUMERICOID = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$/;

function invalid(dn: string, reason: string, pos?: number): IdsyncError {
  const shown = dn.length > 120 ? `${dn.slice(0, 117)}...` : dn;
  return new IdsyncError('LDAP_INVALID_DN', `invalid DN "${shown}": ${reason}${pos === undefined ? '' : ` (at character ${pos + 1})`}`, {
    hint: 'Write DNs as in RFC 4514, e.g. "cn=Alice Smith,ou=People,dc=example,dc=com"; escape , + " \\ < > ; = with a backslash.',
    details: { position: pos },
  });
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses a DN string into RDNs (leftmost first). Throws LDAP_INVALID_DN on malformed input. */
export function parseDn(dn: string): Rdn[] {
  if (typeof dn !== 'string') throw invalid(String(dn), 'not a string');
  if (dn.length > MAX_DN_LENGTH) throw invalid(dn, `longer than ${MAX_DN_LENGTH} characters`);
  const rdns: Rdn[] = [];
  let i = 0;
  const n = dn.length;
  const skipSpaces = (): void => {
    while (i < n && dn[i] === ' ') i++;
  };
  skipSpaces();
  if (i === n) return [];
  let rdn: Rdn = [];
  for (;;) {
    // attribute type
    skipSpaces();
    const typeStart = i;
    while (i < n && dn[i] !== '=' && !SPECIALS.has(dn[i] as string)) i++;
    let type = dn.slice(typeStart, i).trim();
    if (i >= n || dn[i] !== '=') throw invalid(dn, type ? `expected "=" after "${type.slice(0, 40)}"` : 'expected an attribute type', i);
    if (!type) throw invalid(dn, 'empty attribute type', typeStart);
    if (/^oid\./i.test(type)) type = type.slice(4);
    if (!DESCR.test(type) && !NUMERICOID.test(type)) throw invalid(dn, `"${type.slice(0, 40)}" is not an attribute type`, typeStart);
    i++; // '='
    skipSpaces();
    // attribute value
    let ava: Ava;
    if (dn[i] === '#') {
      const start = ++i;
      while (i < n && /[0-9a-fA-F]/.test(dn[i] as string)) i++;
      const hex = dn.slice(start, i);
      if (hex.length === 0 || hex.length % 2 !== 0) throw invalid(dn, 'a "#" value needs an even number of hex digits', start);
      ava = { type, value: hex.toLowerCase(), ber: true };
      skipSpaces();
    } else {
      const bytes: number[] = [];
      let text = '';
      let lastSignificant = 0; // length of `text` up to the last escaped or non-space char
      const flush = (): void => {
        if (bytes.length) {
          try {
            text += utf8.decode(Uint8Array.from(bytes));
          } catch {
            throw invalid(dn, 'escaped bytes are not valid UTF-8', i);
          }
          bytes.length = 0;
          lastSignificant = text.length;
        }
      };
      while (i < n) {
        const c = dn[i] as string;
        if (c === '\\') {
          const next = dn[i + 1];
          if (next === undefined) throw invalid(dn, 'a "\\" ends the DN', i);
          const pair = dn.slice(i + 1, i + 3);
          if (HEX.test(pair)) {
            bytes.push(parseInt(pair, 16));
            i += 3;
            continue;
          }
          flush();
          if (SPECIALS.has(next) || next === ' ' || next === '#') {
            text += next;
            lastSignificant = text.length;
            i += 2;
            continue;
          }
          throw invalid(dn, `"\\${next}" is not a valid escape`, i);
        }
        flush();
        if (c === ',' || c === '+' || c === ';') break;
        if (c === '"' || c === '<' || c === '>') throw invalid(dn, `unescaped "${c}" in a value`, i);
        if (c === '\0') throw invalid(dn, 'unescaped NUL in a value', i);
        text += c;
        if (c !== ' ') lastSignificant = text.length;
        i++;
      }
      flush();
      ava = { type, value: text.slice(0, lastSignificant) };
    }
    rdn.push(ava);
    if (i >= n) {
      rdns.push(rdn);
      break;
    }
    const sep = dn[i];
    if (sep === '+') {
      i++;
      continue;
    }
    if (sep === ',' || sep === ';') {
      rdns.push(rdn);
      if (rdns.length > MAX_RDNS) throw invalid(dn, `more than ${MAX_RDNS} RDNs`);
      rdn = [];
      i++;
      skipSpaces();
      if (i >= n) throw invalid(dn, 'the DN ends with a separator', i - 1);
      continue;
    }
    throw invalid(dn, `unexpected "${sep}"`, i);
  }
  return rdns;
}

/** Escapes a value for use in a DN (RFC 4514 section 2.4). */
export function escapeDnValue(value: string): string {
  let out = '';
  for (let k = 0; k < value.length; k++) {
    const c = value[k] as string;
    const code = c.charCodeAt(0);
    if (SPECIALS.has(c)) out += `\\${c}`;
    else if (code < 0x20 || code === 0x7f) out += `\\${code.toString(16).padStart(2, '0')}`;
    else if ((k === 0 && (c === ' ' || c === '#')) || (k === value.length - 1 && c === ' ')) out += `\\${c}`;
    else out += c;
  }
  return out;
}

/**
 * How a directory compares the Unicode of DN values: `nfc` folds canonically equivalent spellings
 * (OpenLDAP, LDIF files, configuration), `exact` keeps code points apart (Active Directory).
 * Both compare case-insensitively.
 */
export type DnUnicode = 'nfc' | 'exact';

function normalizeValue(ava: Ava, unicode: DnUnicode): string {
  if (ava.ber) return `#${ava.value}`;
  const v = unicode === 'nfc' ? ava.value.normalize('NFC') : ava.value;
  return escapeDnValue(v.toLowerCase().replace(/\s+/g, ' ').trim());
}

function formatAva(ava: Ava, normalize: DnUnicode | false): string {
  const type = normalize ? ava.type.toLowerCase() : ava.type;
  return `${type}=${normalize ? normalizeValue(ava, normalize) : ava.ber ? `#${ava.value}` : escapeDnValue(ava.value)}`;
}

/** Formats RDNs back into a DN string (canonical escaping, original case). */
export function formatDn(rdns: Rdn[]): string {
  return rdns.map((rdn) => rdn.map((a) => formatAva(a, false)).join('+')).join(',');
}

function normalizeRdns(rdns: Rdn[], unicode: DnUnicode = 'nfc'): string {
  return rdns
    .map((rdn) =>
      rdn
        .map((a) => formatAva(a, unicode))
        .sort()
        .join('+'),
    )
    .join(',');
}

/**
 * The comparison form of a DN: equal DNs (in the directory's sense) give equal strings.
 * `unicode`: how the directory compares Unicode (default `nfc`; `exact` for Active Directory).
 * Throws LDAP_INVALID_DN on malformed input.
 */
export function normalizeDn(dn: string, unicode: DnUnicode = 'nfc'): string {
  return normalizeRdns(parseDn(dn), unicode);
}

/** Like normalizeDn, but returns undefined instead of throwing (for DNs read from a server). */
export function tryNormalizeDn(dn: string, unicode: DnUnicode = 'nfc'): string | undefined {
  try {
    return normalizeDn(dn, unicode);
  } catch {
    return undefined;
  }
}

/** Whether `dn` equals `base` or lies below it. Both are parsed; malformed input throws. */
export function isDnUnder(dn: string, base: string): boolean {
  const d = parseDn(dn);
  const b = parseDn(base);
  if (b.length > d.length) return false;
  return normalizeRdns(d.slice(d.length - b.length)) === normalizeRdns(b);
}

/** Whether normalised `dn` equals or lies below normalised `base` (both from normalizeDn). */
export function isNormalizedDnUnder(normalizedDn: string, normalizedBase: string): boolean {
  if (normalizedBase === '') return true;
  if (normalizedDn === normalizedBase) return true;
  // Safe on the normal form: an unescaped "," only ever separates RDNs there, and a "\," escape
  // cannot precede the match because the base starts with an attribute type.
  if (!normalizedDn.endsWith(`,${normalizedBase}`)) return false;
  // Rule out "x=a\\,b=c" where the "," is escaped: count the backslashes before it.
  const cut = normalizedDn.length - normalizedBase.length - 1;
  let slashes = 0;
  for (let k = cut - 1; k >= 0 && normalizedDn[k] === '\\'; k--) slashes++;
  return slashes % 2 === 0;
}

/** The parent DN ('' for a single-RDN DN or the root). */
export function parentDn(dn: string): string {
  const rdns = parseDn(dn);
  return formatDn(rdns.slice(1));
}

/** The leftmost RDN's first value, e.g. "Alice Smith" for "cn=Alice Smith,ou=People,...". */
export function rdnValue(dn: string): string | undefined {
  return parseDn(dn)[0]?.[0]?.value;
}

/**
 * Escapes a value for use inside an LDAP search filter (RFC 4515 section 3):
 * `*` `(` `)` `\` and NUL become `\2a` `\28` `\29` `\5c` `\00`. A Buffer is hex-escaped entirely
 * (for binary attributes such as objectGUID).
 */
export function escapeFilterValue(value: string | Buffer): string {
  if (Buffer.isBuffer(value)) {
    let out = '';
    for (const b of value) out += `\\${b.toString(16).padStart(2, '0')}`;
    return out;
  }
  return value.replace(/[*()\\\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
