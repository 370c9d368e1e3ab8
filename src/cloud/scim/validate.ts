/**
 * Schema-driven input validation. Input is copied into fresh objects with canonical attribute names,
 * in schema order (so two equal resources serialise identically and a no-op PUT can be detected);
 * the caller's objects are never modified or retained.
 */
import { badRequest } from './errors.js';
import { hasLoneSurrogate, MAX_IDENTIFIER_LENGTH, MAX_MULTI_VALUES, MAX_VALUE_LENGTH } from './limits.js';
import { coreAttributes, findAttr, findExtension, type AttributeDef, type ResourceTypeDef } from './schema.js';

/** A resource as stored: canonical names, extensions under their URN, no id/meta/schemas. */
export type Doc = Record<string, unknown>;

const EMAIL = /^[^\s@]+@[^\s@]+$/;
/** Identifiers: indexed, compared and shown everywhere, so held to a shorter length. */
const IDENTIFIERS = new Set(['userName', 'externalId', 'displayName']);

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function invalid(name: string, why: string): never {
  throw badRequest('invalidValue', `attribute "${name}" ${why}`);
}

/** Validates one value of a non-multi-valued view of `attr`; undefined means "unassigned". */
function normalizeSingle(attr: AttributeDef, value: unknown, name: string): unknown {
  if (value === null || value === undefined) return undefined;
  switch (attr.type) {
    case 'complex': {
      if (!isPlainObject(value)) invalid(name, 'must be an object');
      const out: Record<string, unknown> = {};
      const given = lowerKeys(value, name);
      for (const sub of attr.subAttributes ?? []) {
        const k = sub.name.toLowerCase();
        if (!given.has(k)) continue;
        const raw = given.get(k);
        given.delete(k);
        if (sub.mutability === 'readOnly') continue; // RFC 7643 §2.2: readOnly input is ignored
        const v = normalizeSingle(sub, raw, `${name}.${sub.name}`);
        if (v !== undefined) out[sub.name] = v;
      }
      const unknown = given.keys().next();
      if (!unknown.done) invalid(`${name}.${originalKey(value, unknown.value)}`, 'is not defined by the schema');
      // An element given with only readOnly parts (a member with a display but no value) is not
      // silently dropped: its required sub-attribute is missing.
      for (const sub of attr.subAttributes ?? []) {
        if (sub.required && out[sub.name] === undefined && Object.keys(value).length > 0) invalid(`${name}.${sub.name}`, 'is required');
      }
      return Object.keys(out).length ? out : undefined;
    }
    case 'boolean':
      if (typeof value !== 'boolean') invalid(name, 'must be a boolean (true or false)');
      return value;
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value)) invalid(name, 'must be an integer');
      return value;
    case 'decimal':
      if (typeof value !== 'number' || !Number.isFinite(value)) invalid(name, 'must be a number');
      return value;
    case 'dateTime':
      if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) invalid(name, 'must be an xsd:dateTime string');
      return value;
    default: {
      if (typeof value !== 'string') invalid(name, 'must be a string');
      let v = value as string;
      const max = IDENTIFIERS.has(attr.name) ? MAX_IDENTIFIER_LENGTH : MAX_VALUE_LENGTH;
      if (v.length > max) invalid(name, `is longer than ${max} characters (see ServiceProviderConfig)`);
      if (hasLoneSurrogate(v)) invalid(name, 'contains a lone UTF-16 surrogate, which is not a Unicode character');
      if (attr.strictValues && attr.canonicalValues) {
        const canon = attr.canonicalValues.find((c) => c.toLowerCase() === v.toLowerCase());
        if (!canon) invalid(name, `must be one of ${attr.canonicalValues.map((c) => `"${c}"`).join(', ')} (got "${v}")`);
        v = canon as string;
      }
      if (attr.format === 'email' && !EMAIL.test(v)) invalid(name, `must be an e-mail address (got "${v}")`);
      return v;
    }
  }
}

/** Validates a value for `attr` (an array when multi-valued); undefined means "unassigned". */
export function normalizeValue(attr: AttributeDef, value: unknown, name: string = attr.name): unknown {
  if (value === null || value === undefined) return undefined;
  if (!attr.multiValued) return normalizeSingle(attr, value, name);
  if (!Array.isArray(value)) invalid(name, 'is multi-valued and must be an array');
  // Group members live in their own table and are bounded by the payload size alone.
  if (value.length > MAX_MULTI_VALUES && attr.name !== 'members') invalid(name, `has more than ${MAX_MULTI_VALUES} values (see ServiceProviderConfig)`);
  const out: unknown[] = [];
  let primaries = 0;
  for (const el of value) {
    const v = normalizeSingle(attr, el, name);
    if (v === undefined) continue;
    if (isPlainObject(v) && v.primary === true) primaries++;
    out.push(v);
  }
  if (primaries > 1) invalid(name, 'has more than one value marked primary');
  return out.length ? out : undefined;
}

function lowerKeys(obj: Record<string, unknown>, name: string): Map<string, unknown> {
  const m = new Map<string, unknown>();
  for (const [k, v] of Object.entries(obj)) {
    const lk = k.toLowerCase();
    if (m.has(lk)) invalid(name ? `${name}.${k}` : k, 'is given twice (attribute names are case-insensitive)');
    m.set(lk, v);
  }
  return m;
}

function originalKey(obj: Record<string, unknown>, lower: string): string {
  return Object.keys(obj).find((k) => k.toLowerCase() === lower) ?? lower;
}

function checkSchemas(rt: ResourceTypeDef, schemas: unknown): void {
  if (schemas === undefined) return;
  if (!Array.isArray(schemas) || schemas.some((s) => typeof s !== 'string')) {
    throw badRequest('invalidSyntax', '"schemas" must be an array of schema URNs');
  }
  const known = [rt.schema.id, ...rt.extensions.map((s) => s.id)].map((s) => s.toLowerCase());
  for (const s of schemas as string[]) {
    if (!known.includes(s.toLowerCase())) throw badRequest('invalidValue', `schema "${s}" is not supported for ${rt.name} resources`);
  }
  if (!(schemas as string[]).some((s) => s.toLowerCase() === rt.schema.id.toLowerCase())) {
    throw badRequest('invalidValue', `"schemas" must include ${rt.schema.id}`);
  }
}

/**
 * Validates a full resource (POST/PUT body, or the result of a PATCH) against its resource type and
 * returns the document to store. readOnly attributes (id, meta, groups) are ignored; unknown
 * attributes, wrong types and missing required attributes are 400 invalidValue.
 */
export function normalizeResource(rt: ResourceTypeDef, body: unknown): Doc {
  if (!isPlainObject(body)) throw badRequest('invalidSyntax', 'the request body must be a JSON object');
  const given = lowerKeys(body, '');
  checkSchemas(rt, given.get('schemas'));
  given.delete('schemas');
  const out: Doc = {};
  for (const attr of coreAttributes(rt)) {
    const k = attr.name.toLowerCase();
    if (!given.has(k)) continue;
    const raw = given.get(k);
    given.delete(k);
    if (attr.mutability === 'readOnly') continue;
    const v = normalizeValue(attr, raw);
    if (v !== undefined) out[attr.name] = v;
  }
  for (const ext of rt.extensions) {
    const k = ext.id.toLowerCase();
    if (!given.has(k)) continue;
    const raw = given.get(k);
    given.delete(k);
    if (raw === null) continue;
    if (!isPlainObject(raw)) invalid(ext.id, 'must be an object');
    const sub: Doc = {};
    const extGiven = lowerKeys(raw, ext.id);
    for (const attr of ext.attributes) {
      const ak = attr.name.toLowerCase();
      if (!extGiven.has(ak)) continue;
      const v = attr.mutability === 'readOnly' ? undefined : normalizeValue(attr, extGiven.get(ak), `${ext.id}:${attr.name}`);
      extGiven.delete(ak);
      if (v !== undefined) sub[attr.name] = v;
    }
    const unknown = extGiven.keys().next();
    if (!unknown.done) invalid(`${ext.id}:${originalKey(raw, unknown.value)}`, 'is not defined by the schema');
    if (Object.keys(sub).length) out[ext.id] = sub;
  }
  const unknown = given.keys().next();
  if (!unknown.done) {
    const key = originalKey(body, unknown.value);
    if (/^urn:/i.test(key) && !findExtension(rt, key)) throw badRequest('invalidValue', `schema extension "${key}" is not supported for ${rt.name} resources`);
    invalid(key, `is not defined for ${rt.name} resources`);
  }
  for (const attr of rt.schema.attributes) {
    if (attr.required && out[attr.name] === undefined) invalid(attr.name, 'is required');
  }
  return out;
}

/** The core attribute named `name` (case-insensitive), including id/externalId/meta. */
export function coreAttr(rt: ResourceTypeDef, name: string): AttributeDef | undefined {
  return findAttr(coreAttributes(rt), name);
}
