/**
 * SCIM attribute paths for outbound rules: `title`, `name.givenName`, or an extension attribute
 * `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter` (optionally `.sub`).
 * Names are matched case-insensitively against what the resource already holds (SCIM attribute
 * names are case-insensitive). Multi-valued filters (`emails[type eq "work"].value`) are not supported.
 */
import { isForbiddenName } from './cel.js';

export interface ScimPath {
  /** Extension schema URN, when the path names an extension attribute. */
  schema?: string;
  /** Attribute, then optional sub-attribute. */
  names: string[];
  text: string;
}

const NAME = /^[A-Za-z][A-Za-z0-9_$-]{0,63}$/;
/** Core attributes idsync manages itself: a rule cannot set or remove them. */
const MANAGED = new Set(['schemas', 'id', 'meta', 'externalid']);
const MANAGED_GROUP = new Set(['members']);
const MANAGED_USER = new Set(['groups']);

/** Parses a target; returns an error message instead when it is not a supported path. */
export function parseScimPath(text: string, objectType: 'user' | 'group'): ScimPath | string {
  let schema: string | undefined;
  let rest = text;
  if (/^urn:/i.test(text)) {
    const i = text.lastIndexOf(':');
    schema = text.slice(0, i);
    rest = text.slice(i + 1);
    if (!/^urn:[A-Za-z0-9][A-Za-z0-9.:_-]*$/.test(schema) || schema.split(':').length < 3) return `"${text}": not a schema URN followed by :attribute`;
  }
  const names = rest.split('.');
  if (names.length > 2) return `"${text}": at most attribute.subAttribute`;
  for (const n of names) {
    if (!NAME.test(n) || isForbiddenName(n)) return `"${text}": "${n}" is not an attribute name`;
  }
  if (!schema) {
    const root = names[0]!.toLowerCase();
    if (MANAGED.has(root) || (objectType === 'group' ? MANAGED_GROUP : MANAGED_USER).has(root)) {
      return `"${text}" is managed by idsync and cannot be set by a rule`;
    }
  }
  return schema ? { schema, names, text } : { names, text };
}

type Obj = Record<string, unknown>;

function keyOf(o: Obj, name: string): string {
  const lower = name.toLowerCase();
  for (const k of Object.keys(o)) if (k.toLowerCase() === lower) return k;
  return name;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Sets (value not null) or removes (null) `path` in `resource`, which it mutates. */
export function applyScimPath(resource: Obj, path: ScimPath, value: string | boolean | number | null): void {
  let container: Obj = resource;
  const chain: [Obj, string][] = [];
  if (path.schema) {
    const k = keyOf(resource, path.schema);
    if (!isObj(resource[k])) {
      if (value === null) return;
      resource[k] = {};
    }
    chain.push([resource, k]);
    container = resource[k] as Obj;
    if (value !== null) {
      const schemas = Array.isArray(resource.schemas) ? (resource.schemas as unknown[]) : [];
      if (!schemas.some((x) => typeof x === 'string' && x.toLowerCase() === path.schema!.toLowerCase())) {
        resource.schemas = [...schemas, path.schema];
      }
    }
  }
  for (let i = 0; i < path.names.length - 1; i++) {
    const k = keyOf(container, path.names[i]!);
    if (!isObj(container[k])) {
      if (value === null) return;
      container[k] = {};
    }
    chain.push([container, k]);
    container = container[k] as Obj;
  }
  const leaf = keyOf(container, path.names[path.names.length - 1]!);
  if (value !== null) {
    container[leaf] = value;
    return;
  }
  delete container[leaf];
  // Drop parents left empty, as the default flow does (empty objects are never exported).
  for (let i = chain.length - 1; i >= 0; i--) {
    const [parent, k] = chain[i]!;
    if (isObj(parent[k]) && Object.keys(parent[k]).length === 0) delete parent[k];
    else break;
  }
}
