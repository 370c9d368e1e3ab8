/**
 * The schema-driven PATCH engine (RFC 7644 §3.5.2). It works on a copy of the stored document and
 * returns the new document; the caller re-validates the whole result (required attributes, types)
 * before storing it. Paths and attribute names are case-insensitive and are resolved against the
 * schema, so an unknown attribute is a 400 invalidPath and a readOnly one a 400 mutability.
 */
import { badRequest } from './errors.js';
import { DEFAULT_LIMITS, tooManyOperations } from './limits.js';
import { evalFilter, normalizeFilter, parseFilterText, type NFilter } from './filter.js';
import { coreAttributes, findAttr, PATCH_OP, splitUrn, type AttributeDef, type ResourceTypeDef, type SchemaDef } from './schema.js';
import { isPlainObject, normalizeValue, type Doc } from './validate.js';

export type PatchOpName = 'add' | 'replace' | 'remove';

export interface PatchOperation {
  op: PatchOpName;
  path?: string;
  value?: unknown;
}

/** A parsed PATCH path: `[urn:]attr[filter][.sub]`, or a bare extension URN (`attr` undefined). */
export interface PatchPath {
  text: string;
  ext: SchemaDef | null;
  attr?: AttributeDef;
  filter?: NFilter;
  sub?: AttributeDef;
}

const MAX_PATH_LENGTH = 2048;

/** Validates a PatchOp request body and returns its operations. */
export function parsePatchRequest(body: unknown, maxOperations: number = DEFAULT_LIMITS.maxPatchOperations): PatchOperation[] {
  if (!isPlainObject(body)) throw badRequest('invalidSyntax', 'the PATCH body must be a JSON object');
  const schemas = body.schemas;
  if (!Array.isArray(schemas) || !schemas.some((s) => typeof s === 'string' && s.toLowerCase() === PATCH_OP.toLowerCase())) {
    throw badRequest('invalidSyntax', `a PATCH body must have "schemas": ["${PATCH_OP}"]`);
  }
  const ops = body.Operations ?? body.operations;
  if (!Array.isArray(ops) || ops.length === 0) throw badRequest('invalidSyntax', 'a PATCH body needs a non-empty "Operations" array');
  if (ops.length > maxOperations) throw tooManyOperations('the PATCH request', maxOperations, ops.length);
  return ops.map((raw, i): PatchOperation => {
    if (!isPlainObject(raw)) throw badRequest('invalidSyntax', `Operations[${i}] must be an object`);
    const opRaw = raw.op;
    const op = typeof opRaw === 'string' ? opRaw.toLowerCase() : '';
    // Some clients (Entra ID among them) capitalise op names; RFC 7644 names them in lower case.
    if (op !== 'add' && op !== 'replace' && op !== 'remove') {
      throw badRequest('invalidSyntax', `Operations[${i}].op must be "add", "replace" or "remove" (got ${JSON.stringify(opRaw)})`);
    }
    if (raw.path !== undefined && (typeof raw.path !== 'string' || raw.path.trim() === '')) {
      throw badRequest('invalidPath', `Operations[${i}].path must be a non-empty string`);
    }
    if (op !== 'remove' && !('value' in raw)) throw badRequest('invalidValue', `Operations[${i}] (${op}) needs a "value"`);
    const out: PatchOperation = { op };
    if (typeof raw.path === 'string') out.path = raw.path.trim();
    if ('value' in raw) out.value = raw.value;
    return out;
  });
}

/** Finds the `]` closing the `[` at `open`, skipping quoted strings. */
function closingBracket(s: string, open: number): number {
  let inString = false;
  for (let i = open + 1; i < s.length; i++) {
    const c = s[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === ']') return i;
  }
  return -1;
}

export function parsePatchPath(rt: ResourceTypeDef, text: string): PatchPath {
  if (text.length > MAX_PATH_LENGTH) throw badRequest('invalidPath', `path is longer than ${MAX_PATH_LENGTH} characters`);
  const { ext, rest } = splitUrn(rt, text, 'invalidPath');
  if (rest === '') {
    if (!ext) throw badRequest('invalidPath', `path "${text}" names the core schema; use its attributes`);
    return { text, ext };
  }
  const m = /^[^.[]+/.exec(rest);
  if (!m) throw badRequest('invalidPath', `invalid path "${text}"`);
  const name = m[0];
  const attr = findAttr(ext ? ext.attributes : coreAttributes(rt), name);
  if (!attr) throw badRequest('invalidPath', `unknown attribute "${name}" in path "${text}"`);
  const path: PatchPath = { text, ext, attr };
  let i = name.length;
  if (rest[i] === '[') {
    const close = closingBracket(rest, i);
    if (close < 0) throw badRequest('invalidPath', `unbalanced "[" in path "${text}"`);
    if (attr.type !== 'complex' || !attr.multiValued) throw badRequest('invalidPath', `"${attr.name}" is not a multi-valued complex attribute; it cannot take a filter`);
    const raw = parseFilterText(rest.slice(i + 1, close), 'invalidFilter');
    path.filter = normalizeFilter(raw, { parent: attr }, 'invalidPath');
    i = close + 1;
  }
  if (i < rest.length) {
    if (rest[i] !== '.') throw badRequest('invalidPath', `invalid path "${text}"`);
    const subName = rest.slice(i + 1);
    const sub = findAttr(attr.subAttributes, subName);
    if (!sub) throw badRequest('invalidPath', `unknown attribute "${attr.name}.${subName}" in path "${text}"`);
    path.sub = sub;
  }
  return path;
}

function describe(p: PatchPath): string {
  const base = p.attr ? (p.sub ? `${p.attr.name}.${p.sub.name}` : p.attr.name) : '';
  return p.ext ? (base ? `${p.ext.id}:${base}` : p.ext.id) : base;
}

type Obj = Record<string, unknown>;

/** One resolved step of a PATCH: an operation on one path (a path-less operation gives one per key). */
interface Step {
  op: PatchOpName;
  path: PatchPath;
  value: unknown;
}

/** Where consecutive steps can be merged into one pass over the attribute (see applyPatch). */
function batchKey(s: Step): string | undefined {
  const p = s.path;
  if (!p.attr || p.sub || !p.attr.multiValued) return undefined;
  const target = `${p.ext?.id ?? ''}:${p.attr.name}`;
  if (s.op === 'add' && !p.filter) return `add ${target}`;
  if (s.op === 'remove' && !p.filter && s.value !== undefined && s.value !== null) return `remove ${target}`;
  if (s.op === 'remove' && p.filter) return `removeFiltered ${target}`;
  return undefined;
}

/**
 * Applies PATCH operations to a copy of `doc`; `doc` and the operations are left untouched.
 * Runs of adds (or removes) on the same multi-valued attribute are applied in one pass with an
 * index, so a PATCH of 20k member adds is linear, not quadratic; the result is the same as
 * applying them one by one.
 */
export function applyPatch(rt: ResourceTypeDef, doc: Doc, operations: PatchOperation[]): Doc {
  const out = structuredClone(doc) as Doc;
  const steps: Step[] = [];
  for (const op of operations) {
    if (op.path === undefined) {
      if (op.op === 'remove') throw badRequest('noTarget', 'a remove operation needs a "path"');
      if (!isPlainObject(op.value)) throw badRequest('invalidValue', `${op.op} without a path needs an object "value"`);
      for (const [key, v] of Object.entries(op.value)) {
        if (key.toLowerCase() === 'schemas') continue;
        steps.push({ op: op.op, path: parsePatchPath(rt, key), value: v });
      }
    } else {
      steps.push({ op: op.op, path: parsePatchPath(rt, op.path), value: op.value });
    }
  }
  for (let i = 0; i < steps.length; ) {
    const step = steps[i]!;
    const key = batchKey(step);
    let j = i + 1;
    if (key !== undefined) while (j < steps.length && batchKey(steps[j]!) === key) j++;
    if (j - i > 1) applyBatch(out, steps.slice(i, j));
    else apply(out, rt, step.op, step.path, step.value);
    i = j;
  }
  return out;
}

/** A run of same-kind steps on one multi-valued attribute (see batchKey), in one pass. */
function applyBatch(doc: Doc, steps: Step[]): void {
  const p = steps[0]!.path;
  const attr = p.attr as AttributeDef;
  const container: Obj = p.ext ? ((doc[p.ext.id] as Obj | undefined) ?? {}) : doc;
  checkMutability(steps[0]!.op, p, container[attr.name]);
  const current = (container[attr.name] as unknown[] | undefined) ?? [];
  if (steps[0]!.op === 'add') {
    const adder = new Adder(attr, current);
    for (const s of steps) {
      const incoming = normalizeValue(attr, Array.isArray(s.value) ? s.value : [s.value], describe(s.path)) as unknown[] | undefined;
      for (const el of incoming ?? []) adder.add(el);
    }
    container[attr.name] = adder.result;
  } else if (p.filter) {
    const matcher = new FilterMatcher(steps.map((s) => s.path.filter as NFilter));
    container[attr.name] = (current as Obj[]).filter((el) => !matcher.matches(el));
  } else {
    const matcher = new ValueMatcher(attr, steps.map((s) => s.value), describe(p));
    container[attr.name] = (current as Obj[]).filter((el) => !matcher.matches(el));
  }
  tidy(container, attr.name);
  if (p.ext) {
    if (Object.keys(container).length) doc[p.ext.id] = container;
    else delete doc[p.ext.id];
  }
}

function apply(doc: Doc, rt: ResourceTypeDef, op: PatchOpName, p: PatchPath, value: unknown): void {
  if (!p.attr) {
    // The whole extension: its attributes one by one (remove drops the extension).
    const ext = p.ext as SchemaDef;
    if (op === 'remove') {
      delete doc[ext.id];
      return;
    }
    if (!isPlainObject(value)) throw badRequest('invalidValue', `the value for ${ext.id} must be an object`);
    for (const [key, v] of Object.entries(value)) {
      const attr = findAttr(ext.attributes, key);
      if (!attr) throw badRequest('invalidPath', `unknown attribute "${key}" in ${ext.id}`);
      apply(doc, rt, op, { text: `${ext.id}:${key}`, ext, attr }, v);
    }
    return;
  }
  const attr = p.attr;
  const container: Obj = p.ext ? ((doc[p.ext.id] as Obj | undefined) ?? {}) : doc;
  const current = container[attr.name];
  checkMutability(op, p, current);

  if (p.filter) applyFiltered(container, op, p, value);
  else if (p.sub) applySub(container, op, p, value);
  else if (op === 'remove') removeWhole(container, p, value);
  else if (attr.multiValued) {
    const incoming = normalizeValue(attr, Array.isArray(value) ? value : [value], describe(p)) as unknown[] | undefined;
    if (op === 'replace') container[attr.name] = incoming;
    else container[attr.name] = addElements(attr, (current as unknown[] | undefined) ?? [], incoming ?? []);
  } else if (attr.type === 'complex') {
    // RFC 7644 §3.5.2.1/3: sub-attributes given replace those present; others are left alone.
    const v = normalizeValue(attr, value, describe(p)) as Obj | undefined;
    container[attr.name] = { ...((current as Obj | undefined) ?? {}), ...(v ?? {}) };
  } else {
    container[attr.name] = normalizeValue(attr, value, describe(p));
  }

  tidy(container, attr.name);
  if (p.ext) {
    if (Object.keys(container).length) doc[p.ext.id] = container;
    else delete doc[p.ext.id];
  }
}

function checkMutability(op: PatchOpName, p: PatchPath, current: unknown): void {
  const attr = p.attr as AttributeDef;
  if (attr.mutability === 'readOnly' || p.sub?.mutability === 'readOnly') {
    throw badRequest('mutability', `attribute "${describe(p)}" is readOnly and cannot be modified`);
  }
  if (p.sub?.mutability === 'immutable' && p.filter && op !== 'add') {
    throw badRequest('mutability', `attribute "${describe(p)}" is immutable`);
  }
  if (attr.mutability === 'immutable' && current !== undefined && !(op === 'add' && !p.sub && !p.filter)) {
    throw badRequest('mutability', `attribute "${describe(p)}" is immutable and already has a value`);
  }
}

/**
 * "add" to a multi-valued attribute with an index. An element equal to one present is merged into
 * it; identity is the value sub-attribute when it is required (members), else the whole element.
 */
class Adder {
  readonly result: unknown[];
  /** key → indexes of the elements with that key, ascending (the first is the one "add" merges into). */
  private readonly index = new Map<string, number[]>();
  private readonly primaries = new Set<number>();
  private readonly byValue: boolean;

  constructor(attr: AttributeDef, current: unknown[]) {
    this.byValue = findAttr(attr.subAttributes, 'value')?.required === true;
    this.result = [...current];
    this.result.forEach((c, i) => {
      this.link(this.keyOf(c), i);
      if (isPlainObject(c) && c.primary === true) this.primaries.add(i);
    });
  }

  private keyOf(x: unknown): string {
    return this.byValue && isPlainObject(x) ? 'v' + JSON.stringify(x.value ?? null) : 'j' + JSON.stringify(x);
  }

  private link(key: string, i: number): void {
    const l = this.index.get(key);
    if (!l) this.index.set(key, [i]);
    else {
      let at = l.length;
      while (at > 0 && l[at - 1]! > i) at--;
      l.splice(at, 0, i);
    }
  }

  private unlink(key: string, i: number): void {
    const l = this.index.get(key);
    const at = l?.indexOf(i) ?? -1;
    if (at >= 0) l!.splice(at, 1);
    if (l && l.length === 0) this.index.delete(key);
  }

  /** Replaces element i, keeping the index right (its key may change). */
  private set(i: number, el: unknown): void {
    const before = this.keyOf(this.result[i]);
    const after = this.keyOf(el);
    this.result[i] = el;
    if (before !== after) {
      this.unlink(before, i);
      this.link(after, i);
    }
  }

  add(el: unknown): void {
    const k = this.keyOf(el);
    const at = this.index.get(k)?.[0];
    if (at !== undefined) {
      const cur = this.result[at];
      if (isPlainObject(el) && isPlainObject(cur)) {
        this.set(at, { ...cur, ...el });
        if (el.primary === true) this.primaries.add(at);
      }
      return;
    }
    // A new primary value demotes the old one (RFC 7643 §2.4: at most one primary).
    if (isPlainObject(el) && el.primary === true) {
      for (const i of this.primaries) {
        const c = this.result[i];
        if (isPlainObject(c) && c.primary === true) this.set(i, { ...c, primary: false });
      }
      this.primaries.clear();
      this.primaries.add(this.result.length);
    }
    this.link(k, this.result.length);
    this.result.push(el);
  }
}

function addElements(attr: AttributeDef, current: unknown[], incoming: unknown[]): unknown[] {
  const adder = new Adder(attr, current);
  for (const el of incoming) adder.add(el);
  return adder.result;
}

/**
 * Matches elements against several value filters at once: `sub eq "x"` terms (what clients send,
 * e.g. Entra's `members[value eq "id"]`) through a set per sub-attribute, anything else evaluated.
 */
class FilterMatcher {
  private readonly eq = new Map<string, { attr: AttributeDef; values: Set<unknown> }>();
  private readonly other: NFilter[] = [];

  constructor(filters: NFilter[]) {
    for (const f of filters) {
      if (f.op === 'eq' && f.value !== null && f.ref.attr.type !== 'dateTime') {
        const a = f.ref.attr;
        let e = this.eq.get(a.name);
        if (!e) this.eq.set(a.name, (e = { attr: a, values: new Set() }));
        e.values.add(foldValue(a, f.value));
      } else this.other.push(f);
    }
  }

  matches(el: Obj): boolean {
    for (const { attr, values } of this.eq.values()) {
      const v = el[attr.name];
      if (v !== undefined && v !== null && values.has(foldValue(attr, v))) return true;
    }
    return this.other.some((f) => evalFilter(f, el, true));
  }
}

const foldValue = (attr: AttributeDef, v: unknown): unknown => (typeof v === 'string' && !attr.caseExact && isStringType(attr) ? v.toLowerCase() : v);
const isStringType = (a: AttributeDef): boolean => a.type === 'string' || a.type === 'reference' || a.type === 'binary';

/**
 * `remove` of a multi-valued attribute with a "value" (RFC 7644 §3.5.2.2 defines only path filters;
 * Entra ID and the SCIMMY fixtures send values). Each given element selects what to remove: by its
 * "value" when it has one (members, emails by address), else by every sub-attribute it gives, so
 * `[{"type": "home"}]` removes the home e-mails. An element that selects nothing (an empty object,
 * unknown sub-attributes) is a 400: a silent no-op would look like success.
 */
class ValueMatcher {
  private readonly values = new Set<unknown>();
  private readonly patterns: [AttributeDef, unknown][][] = [];
  private readonly valueAttr: AttributeDef | undefined;

  constructor(attr: AttributeDef, given: unknown[], name: string) {
    this.valueAttr = findAttr(attr.subAttributes, 'value');
    for (const raw of given) {
      for (const item of Array.isArray(raw) ? raw : [raw]) {
        if (!isPlainObject(item)) {
          if (attr.type === 'complex' && this.valueAttr && (typeof item === 'string' || typeof item === 'number' || typeof item === 'boolean')) {
            this.values.add(foldValue(this.valueAttr, item));
            continue;
          }
          throw badRequest('invalidValue', `remove on "${name}": each value must be an object naming the elements to remove`);
        }
        if (item.value !== undefined && item.value !== null && this.valueAttr) {
          this.values.add(foldValue(this.valueAttr, item.value));
          continue;
        }
        const pattern: [AttributeDef, unknown][] = [];
        for (const [k, v] of Object.entries(item)) {
          const sub = findAttr(attr.subAttributes, k);
          if (!sub) throw badRequest('invalidValue', `remove on "${name}": "${k}" is not a sub-attribute of ${attr.name}`);
          if (v === null || typeof v === 'object') throw badRequest('invalidValue', `remove on "${name}": "${k}" must be a simple value`);
          pattern.push([sub, foldValue(sub, v)]);
        }
        if (pattern.length === 0) throw badRequest('invalidValue', `remove on "${name}": an empty value selects nothing; give "value" or sub-attributes to match`);
        this.patterns.push(pattern);
      }
    }
  }

  matches(el: Obj): boolean {
    if (this.valueAttr && this.values.size && this.values.has(foldValue(this.valueAttr, el.value))) return true;
    return this.patterns.some((pattern) => pattern.every(([sub, v]) => foldValue(sub, el[sub.name]) === v));
  }
}

/** `attr[filter]` and `attr[filter].sub`. */
function applyFiltered(container: Obj, op: PatchOpName, p: PatchPath, value: unknown): void {
  const attr = p.attr as AttributeDef;
  const filter = p.filter as NFilter;
  const list = ((container[attr.name] as Obj[] | undefined) ?? []).map((e) => ({ ...e }));
  const hits = list.map((el) => evalFilter(filter, el, true));
  const any = hits.some(Boolean);

  if (op === 'remove') {
    if (p.sub) {
      const sub = p.sub;
      list.forEach((el, i) => hits[i] && delete el[sub.name]);
      container[attr.name] = list.filter((el) => Object.keys(el).length > 0);
    } else {
      container[attr.name] = list.filter((_, i) => !hits[i]);
    }
    return;
  }

  if (p.sub) {
    const v = normalizeValue(p.sub, value, describe(p));
    if (!any) {
      // Entra-style `addresses[type eq "work"].streetAddress`: create the element the filter describes.
      const seed = seedFromFilter(filter);
      if (!seed) throw badRequest('noTarget', `no value of "${attr.name}" matches the filter in "${p.text}"`);
      list.push(v === undefined ? seed : { ...seed, [p.sub.name]: v });
      hits.push(true);
    } else {
      list.forEach((el, i) => {
        if (!hits[i]) return;
        if (v === undefined) delete el[(p.sub as AttributeDef).name];
        else el[(p.sub as AttributeDef).name] = v;
      });
    }
    if (p.sub.name === 'primary' && v === true) demoteOthers(list, hits);
    container[attr.name] = list;
    return;
  }

  if (!any) throw badRequest('noTarget', `no value of "${attr.name}" matches the filter in "${p.text}"`);
  const v = normalizeValue({ ...attr, multiValued: false }, value, describe(p)) as Obj | undefined;
  if (v?.primary === true) demoteOthers(list, hits);
  container[attr.name] = list
    .map((el, i) => (!hits[i] ? el : op === 'replace' ? v : { ...el, ...(v ?? {}) }))
    .filter((el): el is Obj => el !== undefined);
}

/**
 * RFC 7644 §3.5.2: when a value is made primary, the server sets primary to false on the others
 * (the elements not `selected`), as a plain "add" of a primary value does (Adder).
 */
function demoteOthers(list: Obj[], selected: boolean[]): void {
  list.forEach((el, i) => {
    if (!selected[i] && el.primary === true) el.primary = false;
  });
}

/** `{type: "work"}` from `type eq "work"` (and conjunctions of eq); undefined when not that simple. */
function seedFromFilter(f: NFilter): Obj | undefined {
  if (f.op === 'eq' && f.value !== null) return { [f.ref.attr.name]: f.value };
  if (f.op === 'and') {
    const parts = f.filters.map(seedFromFilter);
    if (parts.some((x) => x === undefined)) return undefined;
    return Object.assign({}, ...parts) as Obj;
  }
  return undefined;
}

/** `attr.sub` without a filter. */
function applySub(container: Obj, op: PatchOpName, p: PatchPath, value: unknown): void {
  const attr = p.attr as AttributeDef;
  const sub = p.sub as AttributeDef;
  const v = op === 'remove' ? undefined : normalizeValue(sub, value, describe(p));
  if (!attr.multiValued) {
    const cur = { ...((container[attr.name] as Obj | undefined) ?? {}) };
    if (v === undefined) delete cur[sub.name];
    else cur[sub.name] = v;
    container[attr.name] = cur;
    return;
  }
  const list = ((container[attr.name] as Obj[] | undefined) ?? []).map((e) => ({ ...e }));
  if (list.length === 0) {
    if (op === 'remove') return;
    if (v !== undefined) container[attr.name] = [{ [sub.name]: v }];
    return;
  }
  for (const el of list) {
    if (v === undefined) delete el[sub.name];
    else el[sub.name] = v;
  }
  container[attr.name] = list;
}

/** remove `attr`; for multi-valued attributes with a value, only the elements it selects (see ValueMatcher). */
function removeWhole(container: Obj, p: PatchPath, value: unknown): void {
  const attr = p.attr as AttributeDef;
  if (attr.multiValued && value !== undefined && value !== null) {
    const matcher = new ValueMatcher(attr, [value], describe(p));
    container[attr.name] = ((container[attr.name] as Obj[] | undefined) ?? []).filter((el) => !matcher.matches(el));
    return;
  }
  delete container[attr.name];
}

/** Unassigned means absent: drop undefined values, empty arrays and empty objects. */
function tidy(container: Obj, key: string): void {
  const v = container[key];
  if (v === undefined || v === null) delete container[key];
  else if (Array.isArray(v) && v.length === 0) delete container[key];
  else if (isPlainObject(v) && Object.keys(v).length === 0) delete container[key];
}
