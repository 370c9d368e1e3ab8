/**
 * Secret scrubbing for event details. The event log is read by many (admins, journald, log
 * shippers): it must never hold password material or bearer tokens, whatever a caller passes in.
 *
 * - a detail whose KEY names a secret (password, secret, hash, token, credential, unicodePwd,
 *   ntPassword, at any depth) has its value replaced by "[redacted]";
 * - any string VALUE is searched for secret-looking text, which is replaced in place by "[redacted]":
 *   an OrgId hash (`v1;PPH1_MD4,<salt>,<iterations>,<hash>;`), a 32-hex NT hash (a bare 32-hex-digit
 *   token; a GUID written with dashes is not one), a JWT (`eyJ….eyJ….…`);
 * - binary values (Buffer, typed arrays) are replaced whole: a 16-byte NT hash is binary. Pass
 *   anchors as strings (GUID with dashes, base64 or hex of another length).
 */
export const REDACTED = '[redacted]';

export const SECRET_KEY_PATTERN = /password|secret|hash|token|credential|unicodepwd|ntpassword/i;

const SECRET_VALUE_PATTERNS: RegExp[] = [
  // OrgId hash, also malformed or truncated ones: everything up to whitespace or a quote.
  /v1;PPH1_[^\s"'`]*/gi,
  // JWT (and JWS/JWE-like): base64url JSON header, payload, signature.
  /\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g,
  // NT hash: exactly 32 hex digits, not part of a longer hex run.
  /(?<![0-9A-Fa-f])[0-9A-Fa-f]{32}(?![0-9A-Fa-f])/g,
];

const MAX_DEPTH = 8;
const MAX_STRING = 8192;

export function redactString(s: string): string {
  let out = s;
  for (const re of SECRET_VALUE_PATTERNS) out = out.replace(re, REDACTED);
  if (out.length > MAX_STRING) out = out.slice(0, MAX_STRING) + '…';
  return out;
}

/** Returns a JSON-safe, secret-free deep copy of details (never mutates the input). */
export function redactDetails(details: Record<string, unknown> | undefined): Record<string, unknown> {
  if (!details) return {};
  const value = scrub(details, 0, new WeakSet());
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function scrub(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (value === null) return null;
  if (value === undefined) return undefined; // dropped, as JSON does
  switch (typeof value) {
    case 'string':
      return redactString(value);
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'boolean':
      return value;
    case 'bigint':
      return value.toString();
    case 'function':
    case 'symbol':
      return undefined;
  }
  const obj = value as object;
  if (ArrayBuffer.isView(obj) || obj instanceof ArrayBuffer) return REDACTED;
  if (obj instanceof Date) return Number.isNaN(obj.getTime()) ? null : obj.toISOString();
  if (obj instanceof URL) return redactString(scrubUrl(obj));
  if (seen.has(obj) || depth >= MAX_DEPTH) return '[…]';
  seen.add(obj);
  try {
    if (obj instanceof Error) {
      const code = (obj as { code?: unknown }).code;
      return {
        name: obj.name,
        message: redactString(obj.message),
        ...(typeof code === 'string' ? { code } : {}),
      };
    }
    if (Array.isArray(obj)) return obj.map((v) => scrub(v, depth + 1, seen) ?? null);
    if (obj instanceof Map) return scrub(Object.fromEntries(obj), depth, seen);
    if (obj instanceof Set) return scrub([...obj], depth, seen);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) {
      if (SECRET_KEY_PATTERN.test(k)) {
        out[k] = REDACTED;
        continue;
      }
      const s = scrub(v, depth + 1, seen);
      if (s !== undefined) out[k] = s;
    }
    return out;
  } finally {
    seen.delete(obj);
  }
}

/** A URL without its user info (ldap://admin:pw@host would otherwise carry a password). */
function scrubUrl(u: URL): string {
  if (!u.username && !u.password) return u.toString();
  const copy = new URL(u.toString());
  copy.username = '';
  copy.password = '';
  return copy.toString();
}
