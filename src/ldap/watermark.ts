/**
 * Delta-import watermarks: opaque to the engine, versioned JSON to the connectors
 * (`{"v":1,"type":"ad",...}`). Anything unreadable, of another version or another connector type
 * is WATERMARK_INVALID, and the engine falls back to a full import.
 */
import { NoSuchObjectError, type Client, type Control } from 'ldapts';
import { IdsyncError } from '../core/errors.js';
import { mapLdapError } from './client.js';
import { isNormalizedDnUnder, tryNormalizeDn } from './dn.js';
import { getAttr, valuesOf } from './search.js';

export const WATERMARK_VERSION = 1;

/** The error every unusable watermark turns into (the engine then runs a full import). */
export function watermarkInvalid(connectorName: string, reason: string, details: Record<string, unknown> = {}): IdsyncError {
  return new IdsyncError('WATERMARK_INVALID', `connector "${connectorName}": the delta watermark cannot be used: ${reason}`, {
    hint: 'idsync runs a full import instead; the next cycles use delta imports again.',
    details: { connector: connectorName, ...details },
  });
}

export function encodeWatermark(type: string, fields: Record<string, string | boolean>): string {
  return JSON.stringify({ v: WATERMARK_VERSION, type, ...fields });
}

/**
 * Parses a watermark written by encodeWatermark for `type`; checks each listed field against its
 * pattern (so a tampered watermark never reaches an LDAP filter).
 */
export function decodeWatermark<K extends string>(
  raw: string,
  type: string,
  connectorName: string,
  fields: Record<K, RegExp | 'boolean'>,
  optional: readonly NoInfer<K>[] = [],
): Record<K, string | boolean | undefined> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw watermarkInvalid(connectorName, 'it is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw watermarkInvalid(connectorName, 'it is not a JSON object');
  const o = parsed as Record<string, unknown>;
  if (o.v !== WATERMARK_VERSION) throw watermarkInvalid(connectorName, `unsupported version ${JSON.stringify(o.v)}`);
  if (o.type !== type) throw watermarkInvalid(connectorName, `it was written by a connector of type ${JSON.stringify(o.type)}, not ${type}`);
  const out = {} as Record<K, string | boolean | undefined>;
  for (const [k, rule] of Object.entries(fields) as Array<[K, RegExp | 'boolean']>) {
    const v = o[k];
    if (v === undefined && optional.includes(k)) {
      out[k] = undefined;
      continue;
    }
    if (rule === 'boolean') {
      if (typeof v !== 'boolean') throw watermarkInvalid(connectorName, `field "${k}" is missing or not a boolean`);
    } else if (typeof v !== 'string' || !rule.test(v)) {
      throw watermarkInvalid(connectorName, `field "${k}" is missing or malformed`);
    }
    out[k] = v;
  }
  return out;
}

/**
 * The naming context (partition) that holds `baseDn`, from the rootDSE's namingContexts: delta
 * searches run over the whole partition so objects moved out of the base are seen too.
 * Falls back to `baseDn` when the server lists no matching context.
 */
export async function findNamingContext(client: Client, baseDn: string, url: string, connectorName?: string): Promise<string> {
  let contexts: string[];
  try {
    const r = await client.search('', { scope: 'base', filter: '(objectClass=*)', attributes: ['namingContexts'] });
    contexts = valuesOf(r.searchEntries[0] ? getAttr(r.searchEntries[0], 'namingContexts') : undefined);
  } catch (err) {
    throw mapLdapError(err, { url, phase: 'search', base: '', filter: '(objectClass=*) namingContexts', connectorName });
  }
  const base = tryNormalizeDn(baseDn);
  let best: { dn: string; depth: number } | undefined;
  for (const nc of contexts) {
    const n = tryNormalizeDn(nc);
    if (n === undefined || base === undefined || !isNormalizedDnUnder(base, n)) continue;
    const depth = n === '' ? 0 : n.split(',').length;
    if (!best || depth > best.depth) best = { dn: nc, depth };
  }
  return best?.dn ?? baseDn;
}

/** One base-scope read of `attributes` (undefined when the entry does not exist). */
export async function readEntry(
  client: Client,
  dn: string,
  attributes: string[],
  ctx: { url: string; connectorName?: string | undefined },
  opts: { explicitBufferAttributes?: string[]; controls?: Control[] } = {},
): Promise<import('ldapts').Entry | undefined> {
  try {
    const r = await client.search(dn, { scope: 'base', filter: '(objectClass=*)', attributes, explicitBufferAttributes: opts.explicitBufferAttributes ?? [] }, opts.controls);
    return r.searchEntries[0];
  } catch (err) {
    if (err instanceof NoSuchObjectError) return undefined;
    throw mapLdapError(err, { url: ctx.url, phase: 'search', base: dn, filter: '(objectClass=*)', connectorName: ctx.connectorName });
  }
}
