/**
 * SCIM filters (RFC 7644 §3.4.2.2): parse with scim2-parse-filter behind size/depth caps, normalise
 * attribute names against the schema, then either translate to SQL (list/search) or evaluate in JS
 * (PATCH value filters such as `emails[type eq "work"]`). Case rules (caseExact) and dateTime
 * comparison live here, not in the parser.
 */
import { parse as parseRaw, type Filter as RawFilter } from 'scim2-parse-filter';
import { badRequest, type ScimType } from './errors.js';
import { hasLoneSurrogate, MAX_FILTER_LENGTH, MAX_FILTER_SUBSTRING_TERMS, MAX_FILTER_TERMS } from './limits.js';
import { findAttr, refName, resolveAttrPath, type AttrRef, type AttributeDef, type ResourceTypeDef } from './schema.js';

export { MAX_FILTER_LENGTH };
/** Brackets nest in the parser's recursion; beyond a few hundred levels it overflows the stack. */
export const MAX_FILTER_DEPTH = 32;

export type CompareOp = 'eq' | 'ne' | 'co' | 'sw' | 'ew' | 'gt' | 'lt' | 'ge' | 'le';
export type CompValue = string | number | boolean | null;

export type NFilter =
  | { op: 'and' | 'or'; filters: NFilter[] }
  | { op: 'not'; filter: NFilter }
  | { op: CompareOp; ref: AttrRef; value: CompValue }
  | { op: 'pr'; ref: AttrRef }
  /** A condition on the elements of a multi-valued complex attribute; `filter` is element-relative. */
  | { op: 'valuePath'; ref: AttrRef; filter: NFilter };

/** Where attribute names are resolved: a resource type, or the sub-attributes of one complex attribute. */
export type FilterScope = { rt: ResourceTypeDef } | { parent: AttributeDef };

/** Rejects oversized or too deeply nested input before it reaches the (recursive) parser. */
function checkShape(text: string, scimType: ScimType): void {
  if (text.length > MAX_FILTER_LENGTH) throw badRequest(scimType, `filter is longer than ${MAX_FILTER_LENGTH} characters`);
  let depth = 0;
  let nots = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '(' || c === '[') {
      if (++depth > MAX_FILTER_DEPTH) throw badRequest(scimType, `filter nests deeper than ${MAX_FILTER_DEPTH} levels`);
    } else if (c === ')' || c === ']') depth--;
    else if ((c === 'n' || c === 'N') && /^not\b/i.test(text.slice(i, i + 4)) && (i === 0 || /[\s(]/.test(text[i - 1]!))) {
      // "not not not ..." also recurses without brackets.
      if (++nots > MAX_FILTER_DEPTH * 4) throw badRequest(scimType, 'filter has too many "not" operators');
    }
  }
}

/** A quoted string of a filter, as the parser's tokenizer finds it (with its escapes). */
export const FILTER_STRING = /"(?:[^"\\]|\\.)*"/g;

/**
 * A filter's string value: a JSON string (RFC 7644 §3.4.2.2), so `\\` is one backslash and `\"` a
 * quote. A backslash that starts no JSON escape is kept as a backslash: lenient clients send
 * `"DOM\jdoe"` unescaped, and the parser always read it so.
 */
function decodeString(literal: string, scimType: ScimType): string {
  try {
    // Escapes are read in pairs (`\\j` is an escaped backslash, then j); an unknown one keeps its backslash.
    return JSON.parse(literal.replace(/\\([\s\S])/g, (pair, c: string) => ('"\\/bfnrtu'.includes(c) ? pair : `\\\\${c}`))) as string;
  } catch {
    throw badRequest(scimType, `invalid filter: ${literal.length > 200 ? literal.slice(0, 200) + '…' : literal} is not a valid string (a \\u escape needs four hex digits)`);
  }
}

/**
 * The filter's quoted strings, decoded here and each replaced by a placeholder the parser reads back
 * unchanged (its number: every string of the filter is one, so none can pose as another), then put
 * back into its AST. (scim2-parse-filter doubles every backslash not before a quote before decoding:
 * `"DOM\\\\jdoe"` looked for `DOM\\\\jdoe`, and `"tail\\\\"` was refused.)
 */
function protectStrings(text: string, scimType: ScimType): { text: string; strings: Map<string, string> } {
  const strings = new Map<string, string>();
  const replaced = text.replace(FILTER_STRING, (literal) => {
    const key = String(strings.size);
    strings.set(key, decodeString(literal, scimType));
    return `"${key}"`;
  });
  return { text: replaced, strings };
}

function restoreStrings(raw: RawFilter, strings: Map<string, string>): void {
  if (strings.size === 0) return;
  const stack: RawFilter[] = [raw];
  while (stack.length) {
    const f = stack.pop() as RawFilter & { filters?: RawFilter[]; filter?: RawFilter; valFilter?: RawFilter; compValue?: unknown };
    if (f.filters) stack.push(...f.filters);
    else if (f.filter) stack.push(f.filter);
    else if (f.valFilter) stack.push(f.valFilter);
    else if (typeof f.compValue === 'string' && strings.has(f.compValue)) f.compValue = strings.get(f.compValue);
  }
}

/** Parses filter text into the library's AST; any syntax problem is a 400 with `scimType`. */
export function parseFilterText(text: string, scimType: ScimType = 'invalidFilter'): RawFilter {
  if (typeof text !== 'string' || text.trim() === '') throw badRequest(scimType, 'filter is empty');
  if (hasLoneSurrogate(text)) throw badRequest(scimType, 'filter contains a lone UTF-16 surrogate, which is not a Unicode character');
  checkShape(text, scimType);
  const protectedText = protectStrings(text, scimType);
  let raw: RawFilter;
  try {
    raw = parseRaw(protectedText.text);
  } catch (err) {
    const msg = err instanceof RangeError ? 'filter is too complex' : (err as Error).message;
    throw badRequest(scimType, `invalid filter "${text.length > 200 ? text.slice(0, 200) + '…' : text}": ${msg}`);
  }
  restoreStrings(raw, protectedText.strings);
  checkTerms(raw, scimType);
  return raw;
}

/** Bounds the work a filter asks for: comparisons in all, and substring scans in particular. */
function checkTerms(raw: RawFilter, scimType: ScimType): void {
  let terms = 0;
  let substrings = 0;
  const stack: RawFilter[] = [raw];
  while (stack.length) {
    const f = stack.pop() as RawFilter & { filters?: RawFilter[]; filter?: RawFilter; valFilter?: RawFilter };
    if (f.filters) stack.push(...f.filters);
    else if (f.filter) stack.push(f.filter);
    else if (f.valFilter) stack.push(f.valFilter);
    else {
      terms++;
      if (f.op === 'co' || f.op === 'sw' || f.op === 'ew') substrings++;
    }
  }
  if (terms > MAX_FILTER_TERMS) throw badRequest(scimType, `filter has ${terms} comparisons; the maximum is ${MAX_FILTER_TERMS} (see ServiceProviderConfig)`);
  if (substrings > MAX_FILTER_SUBSTRING_TERMS) {
    throw badRequest(scimType, `filter has ${substrings} co/sw/ew comparisons; the maximum is ${MAX_FILTER_SUBSTRING_TERMS} (see ServiceProviderConfig)`);
  }
}

function resolveInScope(scope: FilterScope, path: string, scimType: ScimType): AttrRef {
  if ('rt' in scope) return resolveAttrPath(scope.rt, path, scimType);
  const attr = findAttr(scope.parent.subAttributes, path);
  if (!attr) throw badRequest(scimType, `unknown attribute "${path}" in a filter on ${scope.parent.name}`);
  return { ext: null, attr };
}

const isStringType = (d: AttributeDef): boolean => d.type === 'string' || d.type === 'reference' || d.type === 'binary';

function checkValue(target: AttributeDef, op: CompareOp, value: CompValue, name: string, scimType: ScimType): CompValue {
  const bad = (why: string): never => {
    throw badRequest(scimType, `cannot apply "${op}" to ${name}: ${why}`);
  };
  if (value === null) {
    if (op !== 'eq' && op !== 'ne') bad('null can only be compared with eq or ne');
    return null;
  }
  switch (target.type) {
    case 'boolean':
      if (typeof value !== 'boolean') bad('the attribute is boolean; compare with true or false');
      if (op !== 'eq' && op !== 'ne') bad('booleans support only eq and ne');
      return value;
    case 'integer':
    case 'decimal':
      if (typeof value !== 'number') bad('the attribute is a number');
      if (op === 'co' || op === 'sw' || op === 'ew') bad('numbers do not support co, sw or ew');
      return value;
    case 'dateTime': {
      if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) bad('the attribute is a dateTime; give an xsd:dateTime string');
      if (op === 'co' || op === 'sw' || op === 'ew') bad('dateTimes do not support co, sw or ew');
      // Stored dateTimes are ISO-8601 UTC with milliseconds, so normalised strings compare in time order.
      return new Date(value as string).toISOString();
    }
    case 'complex':
      return bad('the attribute is complex; filter on one of its sub-attributes');
    default:
      if (typeof value !== 'string') bad('the attribute is a string; quote the value');
      return value;
  }
}

/**
 * Resolves every attribute of a parsed filter and checks operator/value types. Complex attributes
 * compared without a sub-attribute use their "value" sub-attribute; `multi.sub op x` becomes a value
 * path so that SQL and JS evaluation treat "any element matches" the same way.
 */
export function normalizeFilter(raw: RawFilter, scope: FilterScope, scimType: ScimType = 'invalidFilter'): NFilter {
  switch (raw.op) {
    case 'and':
    case 'or': {
      const r = raw as { op: 'and' | 'or'; filters: RawFilter[] };
      return { op: r.op, filters: r.filters.map((f) => normalizeFilter(f, scope, scimType)) };
    }
    case 'not':
      return { op: 'not', filter: normalizeFilter((raw as { filter: RawFilter }).filter, scope, scimType) };
    case '[]': {
      if (!('rt' in scope)) throw badRequest(scimType, 'value filters cannot be nested');
      const r = raw as { attrPath: string; valFilter: RawFilter };
      const ref = resolveInScope(scope, r.attrPath, scimType);
      if (ref.sub || ref.attr.type !== 'complex' || !ref.attr.multiValued) {
        throw badRequest(scimType, `"${r.attrPath}[...]" needs a multi-valued complex attribute`);
      }
      return { op: 'valuePath', ref, filter: normalizeFilter(r.valFilter, { parent: ref.attr }, scimType) };
    }
    default: {
      const r = raw as { op: CompareOp | 'pr'; attrPath: string; compValue?: CompValue };
      let ref = resolveInScope(scope, r.attrPath, scimType);
      // A complex attribute without a sub-attribute means its "value" (e.g. `emails co "@x"`).
      if (!ref.sub && ref.attr.type === 'complex' && r.op !== 'pr') {
        const value = findAttr(ref.attr.subAttributes, 'value');
        if (!value) throw badRequest(scimType, `${refName(ref)} is complex; filter on one of its sub-attributes`);
        ref = { ...ref, sub: value };
      }
      const target = ref.sub ?? ref.attr;
      const leaf: NFilter =
        r.op === 'pr'
          ? { op: 'pr', ref: ref.attr.multiValued && ref.sub ? { ext: null, attr: ref.sub } : ref }
          : {
              op: r.op,
              ref: ref.attr.multiValued && ref.sub ? { ext: null, attr: ref.sub } : ref,
              value: checkValue(target, r.op, r.compValue ?? null, refName(ref), scimType),
            };
      if (ref.attr.multiValued && ref.sub) return { op: 'valuePath', ref: { ext: ref.ext, attr: ref.attr }, filter: leaf };
      return leaf;
    }
  }
}

/** Parse + normalise in one step. */
export function compileFilter(text: string, scope: FilterScope, scimType: ScimType = 'invalidFilter'): NFilter {
  return normalizeFilter(parseFilterText(text, scimType), scope, scimType);
}

// ---------------------------------------------------------------------------------------------
// SQL translation

export interface SqlExpr {
  sql: string;
  /** The expression already holds lower-cased text (e.g. a *_lc column). */
  lowered?: boolean;
}

/** Rows of a multi-valued attribute: `FROM <from> [WHERE <where>]`, and each sub-attribute's expression. */
export interface SqlSource {
  from: string;
  where?: string;
  sub(sub: AttributeDef | null): SqlExpr;
}

/** How a resource kind stores its attributes. */
export interface SqlMapping {
  /** A singular attribute (or sub-attribute of a singular complex one). */
  singular(ref: AttrRef): SqlExpr;
  /** The element rows of a multi-valued attribute. */
  multi(ref: AttrRef): SqlSource;
}

/** `$."a"."b"` — names come from the schema, never from the request, so inlining them is safe. */
export function jsonPath(...keys: string[]): string {
  return '$' + keys.map((k) => `."${k}"`).join('');
}

/** The default mapping: everything lives in the JSON document column `r.doc`. */
export function jsonSingular(ref: AttrRef): SqlExpr {
  const keys = [...(ref.ext ? [ref.ext] : []), ref.attr.name, ...(ref.sub ? [ref.sub.name] : [])];
  return { sql: `json_extract(r.doc, '${jsonPath(...keys)}')` };
}

export function jsonMulti(ref: AttrRef): SqlSource {
  const keys = [...(ref.ext ? [ref.ext] : []), ref.attr.name];
  return {
    from: `json_each(r.doc, '${jsonPath(...keys)}') AS je`,
    sub: (sub) => ({ sql: sub ? `json_extract(je.value, '${jsonPath(sub.name)}')` : 'je.value' }),
  };
}

export interface SqlFilter {
  sql: string;
  params: unknown[];
}

function compareSql(e: SqlExpr, target: AttributeDef, op: CompareOp, value: CompValue, params: unknown[]): string {
  let sql = e.sql;
  let v: unknown = value;
  if (isStringType(target) && !target.caseExact && typeof value === 'string') {
    v = value.toLowerCase();
    // scim_lower is a JS-backed SQL function: SQLite's lower() only folds ASCII.
    if (!e.lowered) sql = `scim_lower(${sql})`;
  }
  if (typeof v === 'boolean') v = v ? 1 : 0;
  if (v === null) return op === 'eq' ? `${sql} IS NULL` : `${sql} IS NOT NULL`;
  switch (op) {
    case 'eq':
      params.push(v);
      return `${sql} = ?`;
    case 'ne':
      params.push(v);
      return `(${sql} IS NULL OR ${sql} <> ?)`;
    case 'gt':
    case 'ge':
    case 'lt':
    case 'le':
      params.push(v);
      return `${sql} ${{ gt: '>', ge: '>=', lt: '<', le: '<=' }[op]} ?`;
    default: {
      // co/sw/ew with instr/substr, not LIKE: LIKE folds ASCII case and treats % and _ specially.
      if (v === '') return `${sql} IS NOT NULL`;
      params.push(v, v);
      if (op === 'co') {
        params.pop();
        return `instr(${sql}, ?) > 0`;
      }
      if (op === 'sw') return `substr(${sql}, 1, length(?)) = ?`;
      // Not substr(x, -n): a negative start counts from the end on SQLite only (PostgreSQL too runs this).
      return `substr(${sql}, length(${sql}) - length(?) + 1) = ?`;
    }
  }
}

function presentSql(e: SqlExpr, target: AttributeDef): string {
  return isStringType(target) ? `(${e.sql} IS NOT NULL AND ${e.sql} <> '')` : `${e.sql} IS NOT NULL`;
}

function sourceSql(src: SqlSource, cond: string | null): string {
  const where = [src.where, cond].filter((x): x is string => !!x);
  return `EXISTS (SELECT 1 FROM ${src.from}${where.length ? ' WHERE ' + where.join(' AND ') : ''})`;
}

function toSql(f: NFilter, mapping: SqlMapping, elem: SqlSource | null, params: unknown[]): string {
  const exprOf = (ref: AttrRef): SqlExpr => (elem ? elem.sub(ref.attr) : mapping.singular(ref));
  switch (f.op) {
    case 'and':
    case 'or':
      return '(' + f.filters.map((x) => toSql(x, mapping, elem, params)).join(f.op === 'and' ? ' AND ' : ' OR ') + ')';
    case 'not':
      // NOT over three-valued logic: an absent attribute makes the inner condition NULL, i.e. false.
      return `NOT COALESCE(${toSql(f.filter, mapping, elem, params)}, FALSE)`;
    case 'valuePath': {
      const src = mapping.multi(f.ref);
      return sourceSql(src, toSql(f.filter, mapping, src, params));
    }
    case 'pr': {
      if (!elem && f.ref.attr.multiValued) return sourceSql(mapping.multi(f.ref), null);
      return presentSql(exprOf(f.ref), f.ref.sub ?? f.ref.attr);
    }
    default:
      return compareSql(exprOf(f.ref), f.ref.sub ?? f.ref.attr, f.op, f.value, params);
  }
}

/** Translates a normalised filter into a WHERE clause over a table aliased `r`. */
export function filterToSql(f: NFilter, mapping: SqlMapping): SqlFilter {
  const params: unknown[] = [];
  const sql = toSql(f, mapping, null, params);
  return { sql, params };
}

/** ORDER BY expression for sortBy: singular attributes as is, multi-valued by their primary (or first) value. */
export function sortSql(ref: AttrRef, mapping: SqlMapping): string {
  if (ref.attr.multiValued) {
    const src = mapping.multi({ ext: ref.ext, attr: ref.attr });
    const sub = ref.sub ?? findAttr(ref.attr.subAttributes, 'value') ?? null;
    const primary = findAttr(ref.attr.subAttributes, 'primary');
    const val = src.sub(sub);
    const order = primary ? ` ORDER BY ${src.sub(primary).sql} DESC` : '';
    const target = sub ?? ref.attr;
    const col = isStringType(target) && !target.caseExact && !val.lowered ? `scim_lower(${val.sql})` : val.sql;
    return `(SELECT ${col} FROM ${src.from}${src.where ? ' WHERE ' + src.where : ''}${order} LIMIT 1)`;
  }
  if (ref.attr.type === 'complex' && !ref.sub) throw badRequest('invalidValue', `cannot sort by complex attribute ${refName(ref)}`);
  const e = mapping.singular(ref);
  const target = ref.sub ?? ref.attr;
  return isStringType(target) && !target.caseExact && !e.lowered ? `scim_lower(${e.sql})` : e.sql;
}

// ---------------------------------------------------------------------------------------------
// JS evaluation (PATCH value filters; also a reference for tests of the SQL translation)

type Obj = Record<string, unknown>;

function valueOf(obj: Obj, ref: AttrRef, elementScope: boolean): unknown {
  if (elementScope) return obj[ref.attr.name];
  const base = ref.ext ? (obj[ref.ext] as Obj | undefined) : obj;
  const v = base?.[ref.attr.name];
  if (ref.sub) return v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj)[ref.sub.name] : undefined;
  return v;
}

function compareJs(actual: unknown, target: AttributeDef, op: CompareOp, value: CompValue): boolean {
  if (value === null) return op === 'eq' ? actual === undefined || actual === null : actual !== undefined && actual !== null;
  if (actual === undefined || actual === null) return op === 'ne';
  let a = actual as string | number | boolean;
  let v = value;
  if (target.type === 'dateTime' && typeof a === 'string') {
    const t = Date.parse(a);
    if (Number.isNaN(t)) return op === 'ne';
    a = new Date(t).toISOString();
  }
  if (isStringType(target) && !target.caseExact && typeof a === 'string' && typeof v === 'string') {
    a = a.toLowerCase();
    v = v.toLowerCase();
  }
  switch (op) {
    case 'eq':
      return a === v;
    case 'ne':
      return a !== v;
    case 'co':
      return typeof a === 'string' && a.includes(v as string);
    case 'sw':
      return typeof a === 'string' && a.startsWith(v as string);
    case 'ew':
      return typeof a === 'string' && a.endsWith(v as string);
    case 'gt':
      return a > (v as string | number);
    case 'ge':
      return a >= (v as string | number);
    case 'lt':
      return a < (v as string | number);
    case 'le':
      return a <= (v as string | number);
  }
}

/** Evaluates a normalised filter against a resource (or, with `elementScope`, one element). */
export function evalFilter(f: NFilter, obj: Obj, elementScope = false): boolean {
  switch (f.op) {
    case 'and':
      return f.filters.every((x) => evalFilter(x, obj, elementScope));
    case 'or':
      return f.filters.some((x) => evalFilter(x, obj, elementScope));
    case 'not':
      return !evalFilter(f.filter, obj, elementScope);
    case 'valuePath': {
      const arr = valueOf(obj, f.ref, false);
      return Array.isArray(arr) && arr.some((el) => el && typeof el === 'object' && evalFilter(f.filter, el as Obj, true));
    }
    case 'pr': {
      const v = valueOf(obj, f.ref, elementScope);
      if (Array.isArray(v)) return v.length > 0;
      if (v && typeof v === 'object') return Object.keys(v).length > 0;
      return v !== undefined && v !== null && v !== '';
    }
    default:
      return compareJs(valueOf(obj, f.ref, elementScope), f.ref.sub ?? f.ref.attr, f.op, f.value);
  }
}
