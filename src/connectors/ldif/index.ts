/**
 * LDIF file source: a directory export (slapcat, ldapsearch -LLL, ldifde, the demo's sample) read
 * as a source connector. Users: inetOrgPerson / person / user; groups: groupOfNames /
 * groupOfUniqueNames / group. Other entries (OUs, the domain, computers) are ignored.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { LdifConnectorConfig } from '../../config/schema.js';
import { IdsyncError } from '../../core/errors.js';
import { attributeType, isSecretAttribute, NT_HASH_ATTRIBUTE_TYPES } from '../../core/secret-attributes.js';
import { isNormalizedDnUnder, normalizeDn } from '../../ldap/dn.js';
import { guidFromString, guidToImmutableId, guidToString, sidToString } from '../../ldap/guid.js';
import { stripUniqueMemberUid } from '../ldap/index.js';
import type { ObjectType, SourceConnector, SourceObject } from '../types.js';
import { ldifError, parseLdifFile, type LdifRecord, type LdifSource } from './parser.js';

export { ldifEntry, parseLdifFile, parseLdifStream, writeLdif } from './parser.js';
export type { LdifRecord, LdifWriteEntry, LdifValue } from './parser.js';

const USER_CLASSES = new Set(['inetorgperson', 'person', 'organizationalperson', 'user']);
const GROUP_CLASSES = new Set(['groupofnames', 'groupofuniquenames', 'group']);
/** Attributes whose values are binary by definition: kept as bytes, never decoded as text. */
const BINARY = new Set(['objectguid', 'objectsid', 'unicodepwd', 'jpegphoto', 'thumbnailphoto', 'usercertificate', 'ntsecuritydescriptor']);
const PAGE = 1000;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function classify(classes: string[]): ObjectType | undefined {
  const lc = classes.map((c) => c.toLowerCase());
  if (lc.includes('computer')) return undefined;
  if (lc.some((c) => GROUP_CLASSES.has(c))) return 'group';
  if (lc.some((c) => USER_CLASSES.has(c))) return 'user';
  return undefined;
}

export interface LdifConvertOptions {
  anchorAttribute: string;
  src: LdifSource;
}

/** Converts one parsed record to a SourceObject, or undefined when it is neither user nor group. */
export function ldifRecordToObject(rec: LdifRecord, o: LdifConvertOptions): SourceObject | undefined {
  const attributes: Record<string, string[]> = {};
  const raw = new Map<string, Array<string | Buffer>>();
  for (const a of rec.attributes) {
    let key = a.name
      .split(';')
      .filter((part, i) => i === 0 || part.toLowerCase() !== 'binary')
      .join(';')
      .toLowerCase();
    if (isSecretAttribute(key)) {
      // Secrets never go further; an NT hash stays (under its bare type) only until the import
      // step hands it to password hash sync, before anything is staged.
      const type = attributeType(key);
      if (!NT_HASH_ATTRIBUTE_TYPES.includes(type)) continue;
      key = type;
    }
    let list = raw.get(key);
    if (!list) raw.set(key, (list = []));
    list.push(a.value);
  }
  const type = classify((raw.get('objectclass') ?? []).map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : v)));
  if (!type) return undefined;

  const anchorKey = o.anchorAttribute.toLowerCase();
  let anchor: string | undefined;
  for (const [key, values] of raw) {
    const isGuid = key === 'objectguid';
    const out: string[] = [];
    for (const v of values) {
      if (isGuid) {
        const bytes = Buffer.isBuffer(v) ? v : guidBytesFromText(v, rec, o);
        if (bytes.length !== 16) throw ldifError(o.src, rec.line, `objectGUID of ${rec.dn} must be 16 bytes, got ${bytes.length}`);
        out.push(guidToString(bytes));
        if (key === anchorKey) anchor ??= guidToImmutableId(bytes);
        continue;
      }
      if (key === 'objectsid' && Buffer.isBuffer(v)) {
        try {
          out.push(sidToString(v));
        } catch (err) {
          throw ldifError(o.src, rec.line, `objectSid of ${rec.dn} is not a valid SID`, err);
        }
        continue;
      }
      let text: string;
      if (Buffer.isBuffer(v)) {
        if (BINARY.has(key)) text = v.toString('base64');
        else {
          try {
            text = utf8.decode(v);
          } catch {
            text = v.toString('base64');
          }
        }
      } else text = v;
      out.push(key === 'uniquemember' ? stripUniqueMemberUid(text) : text);
    }
    if (key === anchorKey && anchor === undefined && out[0] !== undefined) anchor = out[0];
    if (out.length) attributes[key] = out;
  }
  if (!anchor) {
    throw ldifError(o.src, rec.line, `entry "${rec.dn}" has no ${o.anchorAttribute} (the anchorAttribute); every user and group needs an immutable ID`);
  }
  // The anchor becomes the cloud externalId and a key everywhere: no silent cleaning, refuse it.
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(anchor)) {
    throw ldifError(o.src, rec.line, `the ${o.anchorAttribute} of entry "${rec.dn}" contains control characters; an anchor must be printable`);
  }
  return { anchor, objectType: type, dn: rec.dn, attributes };
}

/**
 * A record's DN as an identity for duplicate detection: normalised (case, spacing, escapes), and
 * hashed so a file of a million entries keeps 24 bytes per DN in memory. A DN that does not parse
 * is refused here, at its line.
 */
function dnIdentity(rec: LdifRecord, src: LdifSource): string {
  let n: string;
  try {
    n = normalizeDn(rec.dn);
  } catch (err) {
    throw ldifError(src, rec.line, `invalid DN ${JSON.stringify(rec.dn.slice(0, 80))}: ${(err as Error).message}`, err);
  }
  return createHash('sha256').update(n).digest('base64').slice(0, 22);
}

function guidBytesFromText(v: string, rec: LdifRecord, o: LdifConvertOptions): Buffer {
  try {
    return guidFromString(v);
  } catch (err) {
    throw ldifError(o.src, rec.line, `objectGUID of ${rec.dn} is neither base64 ("objectGUID:: ...") nor a GUID string`, err);
  }
}

export function createLdifConnector(cfg: LdifConnectorConfig, opts: { resolvePath(p: string): string }): SourceConnector {
  const file = opts.resolvePath(cfg.path);
  const src: LdifSource = { name: cfg.path, file };
  const anchorAttribute = cfg.anchorAttribute ?? 'entryUUID';
  const include = (cfg.scope?.include ?? []).map((d) => normalizeDn(d));
  const exclude = (cfg.scope?.exclude ?? []).map((d) => normalizeDn(d));

  async function ensureFile(): Promise<void> {
    try {
      const st = await stat(file);
      if (!st.isFile()) throw Object.assign(new Error('not a file'), { code: 'EISDIR' });
    } catch (err) {
      throw new IdsyncError('LDIF_NOT_FOUND', `connector "${cfg.name}": cannot read the LDIF file ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : ((err as NodeJS.ErrnoException).code ?? String(err))}`, {
        hint: 'Check the connector\'s path (relative paths are relative to the configuration file).',
        details: { file, connector: cfg.name },
        cause: err,
      });
    }
  }

  function inScope(rec: LdifRecord): boolean {
    if (!include.length && !exclude.length) return true;
    let n: string;
    try {
      n = normalizeDn(rec.dn);
    } catch (err) {
      throw ldifError(src, rec.line, `invalid DN ${JSON.stringify(rec.dn.slice(0, 80))}: ${(err as Error).message}`, err);
    }
    if (include.length && !include.some((b) => isNormalizedDnUnder(n, b))) return false;
    return !exclude.some((e) => isNormalizedDnUnder(n, e));
  }

  /**
   * One pass over the file: every record parsed and converted, DNs and anchors checked for
   * duplicates. With `emit` false nothing is yielded: that is the validation pass.
   */
  async function* scan(emit: boolean): AsyncGenerator<SourceObject[]> {
    const seen = new Map<string, number>();
    const dns = new Map<string, number>();
    let page: SourceObject[] = [];
    for await (const rec of parseLdifFile(file, src)) {
      const dnKey = dnIdentity(rec, src);
      const firstLine = dns.get(dnKey);
      if (firstLine !== undefined) {
        throw ldifError(src, rec.line, `duplicate DN ${JSON.stringify(rec.dn.slice(0, 200))}: the same entry is at line ${firstLine} and line ${rec.line}`);
      }
      dns.set(dnKey, rec.line);
      if (!inScope(rec)) continue;
      const obj = ldifRecordToObject(rec, { anchorAttribute, src });
      if (!obj) continue;
      const prev = seen.get(obj.anchor);
      if (prev !== undefined) {
        throw ldifError(src, rec.line, `entry "${rec.dn}" has the same ${anchorAttribute} as the entry at line ${prev}`);
      }
      seen.set(obj.anchor, rec.line);
      if (!emit) continue;
      page.push(obj);
      if (page.length >= PAGE) {
        yield page;
        page = [];
      }
    }
    if (page.length) yield page;
  }

  /**
   * The whole file is validated before the first object is handed out: a syntax error at record
   * 1,201 stages nothing (the import would otherwise stage, sync and export the records before it).
   * The file must not change between the validation pass and the import pass.
   */
  async function* objects(): AsyncGenerator<SourceObject[]> {
    await ensureFile();
    const before = await stat(file);
    for await (const page of scan(false)) void page;
    const after = await stat(file);
    if (after.size !== before.size || after.mtimeMs !== before.mtimeMs) throw changedWhileRead();
    yield* scan(true);
    const end = await stat(file);
    if (end.size !== before.size || end.mtimeMs !== before.mtimeMs) throw changedWhileRead();
  }

  function changedWhileRead(): IdsyncError {
    return new IdsyncError('LDIF_PARSE_ERROR', `${cfg.path}: the file changed while it was being read; nothing was imported`, {
      hint: 'Write the LDIF export to a temporary file and rename it into place when it is complete; the next cycle reads it again.',
      details: { file, connector: cfg.name },
    });
  }

  return {
    name: cfg.name,
    kind: 'ldif',
    async test() {
      // Reads the whole file: a syntax error is reported now rather than at the next sync.
      await ensureFile();
      for await (const page of scan(false)) void page;
    },
    fullImport() {
      return objects();
    },
    async close() {
      /* nothing held open between calls */
    },
  };
}
