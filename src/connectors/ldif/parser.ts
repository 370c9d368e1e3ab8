/**
 * LDIF (RFC 2849) reader and writer.
 *
 * The reader streams the file line by line (never the whole file in memory) and yields one record
 * at a time. Supported: comments, folded lines, `attr:: base64`, `version: 1`, `changetype: add`
 * (treated as content), attribute options (`cn;lang-en`). Refused with a clear error: other change
 * types, and `attr:< URL` values (reading arbitrary local files from a data file would let it pull
 * secrets into the sync; inline the value as base64 instead).
 * Every error is LDIF_PARSE_ERROR with "file:line: ..." and details {file, line}.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { IdsyncError } from '../../core/errors.js';
import { isSecretAttribute } from '../../core/secret-attributes.js';

export interface LdifRecord {
  dn: string;
  /** 1-based line number of the record's `dn:` line. */
  line: number;
  /** Attribute descriptions as written (with options), in file order, values raw. */
  attributes: Array<{ name: string; value: string | Buffer; line: number }>;
}

export interface LdifSource {
  /** Name used in error messages (usually the path as the user wrote it). */
  name: string;
  /** Full path, for details.file (defaults to name). */
  file?: string;
}

export function ldifError(src: LdifSource, line: number, message: string, cause?: unknown): IdsyncError {
  return new IdsyncError('LDIF_PARSE_ERROR', `${src.name}:${line}: ${message}`, {
    hint: 'Fix the LDIF file at that line (RFC 2849: "attribute: value", "attribute:: base64", records separated by a blank line).',
    details: { file: src.file ?? src.name, line },
    cause,
  });
}

const ATTR_DESC = /^((?:[A-Za-z][A-Za-z0-9-]*)|(?:\d+(?:\.\d+)+))((?:;[A-Za-z0-9-]+)*)$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function show(text: string): string {
  const t = text.length > 40 ? `${text.slice(0, 40)}...` : text;
  return JSON.stringify(t);
}

/** A line for an error message, without the value when the line names a secret attribute. */
function showLine(text: string): string {
  const name = /^\s*([^:\s]*)/.exec(text)?.[1] ?? '';
  return isSecretAttribute(name) ? JSON.stringify(`${name.slice(0, 40)}: (value hidden: a secret attribute)`) : show(text);
}

interface LogicalLine {
  text: string;
  line: number;
}

function decodeBase64(src: LdifSource, line: number, b64: string, name: string): Buffer {
  const clean = b64.replace(/\s+/g, '');
  if (!BASE64.test(clean) || clean.length % 4 === 1) {
    throw ldifError(src, line, `invalid base64 value ${isSecretAttribute(name) ? `of ${name} (value hidden: a secret attribute)` : show(clean)}`);
  }
  return Buffer.from(clean, 'base64');
}

/** Splits a logical line into attribute description and value. */
function parseAttrLine(src: LdifSource, l: LogicalLine): { name: string; value: string | Buffer } {
  const colon = l.text.indexOf(':');
  if (colon <= 0) throw ldifError(src, l.line, `expected 'attribute: value' but found ${showLine(l.text)}`);
  const name = l.text.slice(0, colon);
  if (!ATTR_DESC.test(name)) throw ldifError(src, l.line, `${show(name)} is not a valid attribute name`);
  const rest = l.text.slice(colon + 1);
  if (rest.startsWith(':')) {
    return { name, value: decodeBase64(src, l.line, rest.slice(1).trim(), name) };
  }
  if (rest.startsWith('<')) {
    throw ldifError(src, l.line, `URL values ("${name}:< ...") are not supported; inline the value as "${name}:: <base64>"`);
  }
  // RFC 2849 forbids a SAFE-STRING starting with ':' or '<' after the FILL, but exports in the wild
  // contain values like "<none>": accept them as text.
  const value = rest.replace(/^ +/, '');
  return { name, value };
}

/** Yields logical lines (folding resolved, comments dropped) grouped as records. */
async function* logicalRecords(src: LdifSource, input: Readable): AsyncGenerator<LogicalLine[]> {
  const rl = createInterface({ input, crlfDelay: Infinity });
  let record: LogicalLine[] = [];
  let current: LogicalLine | undefined;
  let inComment = false;
  let lineNo = 0;
  try {
    for await (let raw of rl) {
      lineNo++;
      if (lineNo === 1 && raw.charCodeAt(0) === 0xfeff) raw = raw.slice(1);
      if (raw.startsWith(' ')) {
        if (inComment) continue;
        if (!current) throw ldifError(src, lineNo, 'a continuation line (starting with a space) must follow another line');
        current.text += raw.slice(1);
        continue;
      }
      inComment = false;
      if (raw.startsWith('#')) {
        inComment = true;
        continue;
      }
      if (raw.trim() === '') {
        if (record.length) yield record;
        record = [];
        current = undefined;
        continue;
      }
      current = { text: raw, line: lineNo };
      record.push(current);
    }
    if (record.length) yield record;
  } finally {
    rl.close();
  }
}

/**
 * Streams the records of an LDIF stream. The first record may start with `version: 1`.
 */
export async function* parseLdifStream(input: Readable, src: LdifSource): AsyncGenerator<LdifRecord> {
  let first = true;
  for await (const lines of logicalRecords(src, input)) {
    let k = 0;
    if (first) {
      first = false;
      const v = /^version:\s*(.*)$/i.exec(lines[0]?.text ?? '');
      if (v) {
        if (v[1]?.trim() !== '1') throw ldifError(src, (lines[0] as LogicalLine).line, `unsupported LDIF version ${show(v[1] ?? '')} (only "version: 1")`);
        k = 1;
        if (lines.length === 1) continue;
      }
    }
    const dnLine = lines[k] as LogicalLine;
    const dnAttr = parseAttrLine(src, dnLine);
    if (dnAttr.name.toLowerCase() !== 'dn') throw ldifError(src, dnLine.line, `expected 'dn: <distinguished name>' to start the record but found ${showLine(dnLine.text)}`);
    let dn: string;
    if (Buffer.isBuffer(dnAttr.value)) {
      try {
        dn = utf8.decode(dnAttr.value);
      } catch (err) {
        throw ldifError(src, dnLine.line, 'the base64 DN is not valid UTF-8', err);
      }
    } else dn = dnAttr.value;
    const rec: LdifRecord = { dn, line: dnLine.line, attributes: [] };
    k++;
    // optional control: lines, then changetype
    while (k < lines.length && /^control:/i.test((lines[k] as LogicalLine).text)) k++;
    const ct = k < lines.length ? /^changetype:\s*(.*)$/i.exec((lines[k] as LogicalLine).text) : null;
    if (ct) {
      const type = (ct[1] ?? '').trim().toLowerCase();
      if (type !== 'add') {
        throw ldifError(src, (lines[k] as LogicalLine).line, `change records ("changetype: ${type}") are not supported; use a content LDIF (an export of the directory, e.g. slapcat or ldapsearch -LLL)`);
      }
      k++;
    }
    for (; k < lines.length; k++) {
      const l = lines[k] as LogicalLine;
      const { name, value } = parseAttrLine(src, l);
      if (name.toLowerCase() === 'dn') throw ldifError(src, l.line, 'a second "dn:" in the same record (records are separated by a blank line)');
      if (/^changetype$/i.test(name)) throw ldifError(src, l.line, '"changetype:" must directly follow the dn line');
      rec.attributes.push({ name, value, line: l.line });
    }
    yield rec;
  }
}

/** Streams the records of an LDIF file. */
export function parseLdifFile(path: string, src: LdifSource = { name: path }): AsyncGenerator<LdifRecord> {
  return parseLdifStream(createReadStream(path), { file: path, ...src });
}

// ---------------------------------------------------------------------------------------------
// writer

export type LdifValue = string | Buffer;
export interface LdifWriteEntry {
  dn: string;
  attributes: Record<string, LdifValue | LdifValue[] | undefined>;
}

/** Whether a string can be written as `attr: value` (RFC 2849 SAFE-STRING, ASCII only). */
function isSafe(v: string): boolean {
  if (v === '') return true;
  const c0 = v.charCodeAt(0);
  if (c0 === 0x20 || c0 === 0x3a || c0 === 0x3c) return false; // space, ':', '<'
  if (v.endsWith(' ')) return false;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === 0 || c === 0x0a || c === 0x0d || c > 0x7e) return false;
  }
  return true;
}

function fold(line: string, width = 76): string {
  if (line.length <= width) return line;
  const parts = [line.slice(0, width)];
  for (let i = width; i < line.length; i += width - 1) parts.push(` ${line.slice(i, i + width - 1)}`);
  return parts.join('\n');
}

function attrLine(name: string, value: LdifValue): string {
  if (Buffer.isBuffer(value)) return fold(`${name}:: ${value.toString('base64')}`);
  if (isSafe(value)) return fold(`${name}: ${value}`);
  return fold(`${name}:: ${Buffer.from(value, 'utf8').toString('base64')}`);
}

/** One LDIF record (no trailing blank line). */
export function ldifEntry(dn: string, attributes: LdifWriteEntry['attributes']): string {
  const lines = [attrLine('dn', dn)];
  for (const [name, v] of Object.entries(attributes)) {
    if (v === undefined) continue;
    for (const value of Array.isArray(v) ? v : [v]) lines.push(attrLine(name, value));
  }
  return lines.join('\n');
}

/** A whole LDIF document: `version: 1` then the records separated by blank lines. */
export function writeLdif(entries: Iterable<LdifWriteEntry>): string {
  const parts = ['version: 1'];
  for (const e of entries) parts.push(ldifEntry(e.dn, e.attributes));
  return `${parts.join('\n\n')}\n`;
}
