/**
 * `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9). Attributes with returned "always"
 * (schemas, id, meta) are returned regardless.
 */
import { badRequest } from './errors.js';
import { resolveAttrPath, type AttrRef, type ResourceTypeDef } from './schema.js';
import { isPlainObject } from './validate.js';

export interface Projection {
  include?: AttrRef[];
  exclude?: AttrRef[];
}

type Obj = Record<string, unknown>;

function parseList(rt: ResourceTypeDef, value: unknown, param: string): AttrRef[] | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const items = Array.isArray(value) ? value : [value];
  if (items.some((x) => typeof x !== 'string')) throw badRequest('invalidValue', `"${param}" must be a comma-separated list of attribute names`);
  const names = (items as string[])
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length > 200) throw badRequest('invalidValue', `"${param}" lists too many attributes`);
  return names.map((n) => resolveAttrPath(rt, n, 'invalidValue'));
}

export function parseProjection(rt: ResourceTypeDef, attributes: unknown, excludedAttributes: unknown): Projection {
  const p: Projection = {};
  const include = parseList(rt, attributes, 'attributes');
  const exclude = parseList(rt, excludedAttributes, 'excludedAttributes');
  if (include) p.include = include;
  else if (exclude) p.exclude = exclude;
  return p;
}

const always = (ref: AttrRef): boolean => !ref.ext && ref.attr.returned === 'always';

/** Whether a projection returns top-level core attribute `name` (used to skip loading members/groups). */
export function returnsAttribute(p: Projection, name: string): boolean {
  if (p.include) return p.include.some((r) => !r.ext && r.attr.name === name);
  if (p.exclude) return !p.exclude.some((r) => !r.ext && r.attr.name === name && !r.sub);
  return true;
}

export function project(resource: Obj, p: Projection): Obj {
  if (p.include) {
    const out: Obj = { schemas: resource.schemas, id: resource.id };
    for (const ref of p.include) {
      if (always(ref)) continue;
      const src = ref.ext ? (resource[ref.ext] as Obj | undefined) : resource;
      const v = src?.[ref.attr.name];
      if (v === undefined) continue;
      const dst = ref.ext ? ((out[ref.ext] as Obj | undefined) ?? (out[ref.ext] = {})) as Obj : out;
      if (!ref.sub) dst[ref.attr.name] = v;
      else if (Array.isArray(v)) {
        const sub = ref.sub.name;
        const prev = (dst[ref.attr.name] as Obj[] | undefined) ?? v.map(() => ({}));
        dst[ref.attr.name] = prev.map((el, i) => {
          const srcEl = v[i] as Obj | undefined;
          return srcEl && srcEl[sub] !== undefined ? { ...el, [sub]: srcEl[sub] } : el;
        });
      } else if (isPlainObject(v) && v[ref.sub.name] !== undefined) {
        dst[ref.attr.name] = { ...((dst[ref.attr.name] as Obj | undefined) ?? {}), [ref.sub.name]: v[ref.sub.name] };
      }
    }
    // Drop elements that got none of the requested sub-attributes.
    for (const [k, v] of Object.entries(out)) if (Array.isArray(v) && k !== 'schemas') out[k] = v.filter((el) => !isPlainObject(el) || Object.keys(el).length > 0);
    out.meta = resource.meta;
    return withSchemas(out);
  }
  if (p.exclude) {
    const out: Obj = { ...resource };
    for (const ref of p.exclude) {
      if (always(ref)) continue;
      const holder = ref.ext ? (out[ref.ext] as Obj | undefined) : out;
      if (!holder) continue;
      if (!ref.sub) {
        if (ref.ext) out[ref.ext] = Object.fromEntries(Object.entries(holder).filter(([k]) => k !== ref.attr.name));
        else delete out[ref.attr.name];
      } else {
        const v = holder[ref.attr.name];
        const strip = (el: unknown): unknown => (isPlainObject(el) ? Object.fromEntries(Object.entries(el).filter(([k]) => k !== ref.sub!.name)) : el);
        const nv = Array.isArray(v) ? v.map(strip) : strip(v);
        if (ref.ext) out[ref.ext] = { ...holder, [ref.attr.name]: nv };
        else out[ref.attr.name] = nv;
      }
      if (ref.ext && Object.keys(out[ref.ext] as Obj).length === 0) delete out[ref.ext];
    }
    return withSchemas(out);
  }
  return resource;
}

/** `schemas` lists the core schema and the extensions actually present. */
function withSchemas(o: Obj): Obj {
  const schemas = (o.schemas as string[]).filter((s, i) => i === 0 || o[s] !== undefined);
  return { ...o, schemas };
}
