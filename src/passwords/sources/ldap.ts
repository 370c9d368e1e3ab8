/**
 * Password source: an NT hash kept in the directory itself — OpenLDAP with the samba schema
 * (`sambaNTPassword`, 32 hex digits), or a `unicodePwd` value a connector was given.
 *
 * The import step calls extractPasswordAttributes() on every object BEFORE it is staged: the
 * attributes are removed in place, so NT hashes never reach the connector space, its content hash
 * or any export; the returned NT hash goes to pipeline.observeNtHash(), which queues it only when it
 * changed since the last import (keyed fingerprint, never the hash itself).
 */
import type { SourceObject } from '../../connectors/types.js';
import { attributeType, isSecretAttribute, NT_HASH_ATTRIBUTE_TYPES } from '../../core/secret-attributes.js';

/** Attributes that carry password material and must never be staged (lower-case names). */
export const PASSWORD_ATTRIBUTES = NT_HASH_ATTRIBUTE_TYPES;

const HEX32 = /^[0-9a-fA-F]{32}$/;
const BASE64_16 = /^[A-Za-z0-9+/]{22}==$/;

/**
 * Removes every secret attribute (src/core/secret-attributes.ts: matched by type, options and case
 * ignored) from `object.attributes` (in place) and returns the NT hash the password attributes
 * held, if any was well-formed. A malformed value is dropped all the same (never staged).
 * sambaNTPassword "NO PASSWORD*********************" (no password set) yields nothing.
 */
export function extractPasswordAttributes(object: SourceObject): { nt?: Buffer } {
  let nt: Buffer | undefined;
  for (const key of Object.keys(object.attributes)) {
    if (!isSecretAttribute(key)) continue;
    const k = attributeType(key);
    const value = object.attributes[key]?.[0];
    delete object.attributes[key];
    if (!PASSWORD_ATTRIBUTES.includes(k)) continue;
    if (nt || value === undefined) continue;
    if (k === 'sambantpassword' && HEX32.test(value)) nt = Buffer.from(value, 'hex');
    else if (k === 'unicodepwd' && BASE64_16.test(value)) nt = Buffer.from(value, 'base64');
  }
  return nt ? { nt } : {};
}
