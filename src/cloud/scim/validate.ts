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
/*
 * Identifiers (userName, externalId, displayName) are indexed, compared and shown everywhere, so
 * held to MAX_IDENTIFIER_LENGTH.
 */

/**
 * The attributes of one level of a schema, compiled once: every input key is looked up by its own
 * spelling, then lower-cased (attribute names are case-insensitive), into its slot in schema order.
 * A Bulk validates hundreds of resources per request, so no per-resource Map or lower-casing of
 * the schema's names.
 */
interface Slots {
  list: AttributeDef[];
  index: Map<string, number>;
  required: AttributeDef[];
}

const NONE = Symbol('unassigned');
const compiled = new WeakMap<object, Slots>();

function slotsOf(owner: object, list: AttributeDef[], extra: string[] = []): Slots {
  let s = compiled.get(owner);
  if (!s) {
    const index = new Map<string, number>();
    [...list.map((a) => a.name), ...extra].forEach((n, i) => {
      index.set(n, i);
      index.set(n.toLowerCase(), i);
    });
    s = { list, index, required: list.filter((a) => a.required) };
    compiled.set(owner, s);
  }
  return s;
}

/**
 * Puts each own key of `obj` into its slot of `given` (NONE where absent); returns the first key
 * the schema does not define. A name given twice (in any case) is refused, as the first error.
 */
function fill(obj: Record<string, unknown>, s: Slots, given: unknown[], name: string): string | undefined {
  let unknown: string | undefined;
  let unknownLc: Set<string> | undefined;
  for (const k of Object.keys(obj)) {
    const i = s.index.get(k) ?? s.index.get(k.toLowerCase());
    if (i === undefined) {
      const lk = k.toLowerCase();
      unknownLc ??= new Set();
      if (unknownLc.has(lk)) invalid(name ? `${name}.${k}` : k, 'is given twice (attribute names are case-insensitive)');
      unknownLc.add(lk);
      unknown ??= k;
      continue;
    }
    if (given[i] !== NONE) invalid(name ? `${name}.${k}` : k, 'is given twice (attribute names are case-insensitive)');
    given[i] = obj[k];
  }
  return unknown;
}

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
      const subs = slotsOf(attr, attr.subAttributes ?? []);
      const given = new Array<unknown>(subs.list.length).fill(NONE);
      const unknown = fill(value, subs, given, name);
      const out: Record<string, unknown> = {};
      for (let i = 0; i < subs.list.length; i++) {
        const raw = given[i];
        if (raw === NONE) continue;
        const sub = subs.list[i]!;
        if (sub.mutability === 'readOnly') continue; // RFC 7643 §2.2: readOnly input is ignored
        const v = normalizeSingle(sub, raw, `${name}.${sub.name}`);
        if (v !== undefined) out[sub.name] = v;
      }
      if (unknown !== undefined) invalid(`${name}.${unknown}`, 'is not defined by the schema');
      // An element given with only readOnly parts (a member with a display but no value) is not
      // silently dropped: its required sub-attribute is missing.
      for (const sub of subs.required) {
        if (out[sub.name] === undefined && Object.keys(value).length > 0) invalid(`${name}.${sub.name}`, 'is required');
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
      const max = attr.name === 'userName' || attr.name === 'externalId' || attr.name === 'displayName' ? MAX_IDENTIFIER_LENGTH : MAX_VALUE_LENGTH;
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

/** Each resource type's schema URNs, lower-cased once: the core schema first. */
const knownSchemas = new WeakMap<ResourceTypeDef, string[]>();

function checkSchemas(rt: ResourceTypeDef, schemas: unknown): void {
  if (schemas === undefined) return;
  if (!Array.isArray(schemas) || schemas.some((s) => typeof s !== 'string')) {
    throw badRequest('invalidSyntax', '"schemas" must be an array of schema URNs');
  }
  let known = knownSchemas.get(rt);
  if (!known) knownSchemas.set(rt, (known = [rt.schema.id, ...rt.extensions.map((s) => s.id)].map((s) => s.toLowerCase())));
  let core = false;
  for (const s of schemas as string[]) {
    const i = known.indexOf(s.toLowerCase());
    if (i < 0) throw badRequest('invalidValue', `schema "${s}" is not supported for ${rt.name} resources`);
    if (i === 0) core = true;
  }
  if (!core) throw badRequest('invalidValue', `"schemas" must include ${rt.schema.id}`);
}

/**
 * Validates a full resource (POST/PUT body, or the result of a PATCH) against its resource type and
 * returns the document to store. readOnly attributes (id, meta, groups) are ignored; unknown
 * attributes, wrong types and missing required attributes are 400 invalidValue.
 */
export function normalizeResource(rt: ResourceTypeDef, body: unknown): Doc {
  if (!isPlainObject(body)) throw badRequest('invalidSyntax', 'the request body must be a JSON object');
  // Slots: the core attributes, then each extension, then "schemas".
  const core = coreAttributes(rt);
  const slots = slotsOf(rt, core, [...rt.extensions.map((e) => e.id), 'schemas']);
  const given = new Array<unknown>(core.length + rt.extensions.length + 1).fill(NONE);
  const unknown = fill(body, slots, given, '');
  const schemas = given[core.length + rt.extensions.length];
  checkSchemas(rt, schemas === NONE ? undefined : schemas);
  const out: Doc = {};
  for (let i = 0; i < core.length; i++) {
    const raw = given[i];
    if (raw === NONE) continue;
    const attr = core[i]!;
    if (attr.mutability === 'readOnly') continue;
    const v = normalizeValue(attr, raw);
    if (v !== undefined) out[attr.name] = v;
  }
  for (let e = 0; e < rt.extensions.length; e++) {
    const raw = given[core.length + e];
    if (raw === NONE || raw === null) continue;
    const ext = rt.extensions[e]!;
    if (!isPlainObject(raw)) invalid(ext.id, 'must be an object');
    const extSlots = slotsOf(ext, ext.attributes);
    const extGiven = new Array<unknown>(ext.attributes.length).fill(NONE);
    const extUnknown = fill(raw, extSlots, extGiven, ext.id);
    const sub: Doc = {};
    for (let i = 0; i < ext.attributes.length; i++) {
      const rawValue = extGiven[i];
      if (rawValue === NONE) continue;
      const attr = ext.attributes[i]!;
      const v = attr.mutability === 'readOnly' ? undefined : normalizeValue(attr, rawValue, `${ext.id}:${attr.name}`);
      if (v !== undefined) sub[attr.name] = v;
    }
    if (extUnknown !== undefined) invalid(`${ext.id}:${extUnknown}`, 'is not defined by the schema');
    if (Object.keys(sub).length) out[ext.id] = sub;
  }
  if (unknown !== undefined) {
    if (/^urn:/i.test(unknown) && !findExtension(rt, unknown)) throw badRequest('invalidValue', `schema extension "${unknown}" is not supported for ${rt.name} resources`);
    invalid(unknown, `is not defined for ${rt.name} resources`);
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
