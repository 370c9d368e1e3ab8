/**
 * Attribute maps as the console shows them, parsed from the engine's JSON. Secrets are dropped by
 * web/security.ts (`withoutSecrets`, `SECRET_ATTR`), shared with the cloud portal.
 */
import type { AttrMap } from './api-types.js';

export function parseJsonAttrs(text: string): AttrMap {
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as AttrMap) : {};
  } catch {
    return {};
  }
}

/** A name to show for an object: the first of the usual naming attributes it has. */
export function display(attrs: AttrMap): string {
  for (const k of ['displayName', 'userName', 'cn', 'mail', 'name', 'sAMAccountName', 'uid', 'displayname', 'samaccountname']) {
    const v = attrs[k];
    if (typeof v === 'string' && v) return v;
    if (Array.isArray(v) && typeof v[0] === 'string') return v[0];
  }
  return '';
}
