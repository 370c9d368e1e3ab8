/**
 * Declarative rules compiled from the `rules:` section of the configuration: scoping filters,
 * inbound and outbound attribute flows (CEL), connector precedence, join rules and cloud soft
 * match. Everything is checked and compiled once at load; evaluation only runs cached programs.
 * Without a `rules:` section the result behaves exactly like the built-in defaults
 * (src/engine/flows.ts). docs/rules.md documents the language.
 */
import type { SourceObject } from '../connectors/types.js';
import { inboundFlow, type MvAttrs } from '../engine/flows.js';
import { IdsyncError } from '../core/errors.js';
import { normalizeDn } from '../ldap/dn.js';
import { compileExpression, inboundEnv, outboundEnv, RuleCompileError, SCALAR_TYPES, scopeEnv, toMvValue, toScimValue, type Compiled } from './cel.js';
import { applyScimPath, parseScimPath, type ScimPath } from './scim-path.js';
import type { RulesConfig } from './schema.js';

export { rulesSchema, type RulesConfig, type RulesInput } from './schema.js';
export { toIsoDate } from './cel.js';

export type ConfigPath = (string | number)[];
type Kind = 'ad' | 'ldap' | 'ldif';
type ObjType = 'user' | 'group';

export interface CompiledRules {
  /** Scoping filter beyond the connector's OU scope: attribute conditions and group membership. */
  inScope(connector: string, object: SourceObject, memberOf: (groupDnNorm: string) => boolean): boolean;
  /** The scope rule that leaves `object` out and why, or null when it is in scope (`sync --object`). */
  explainScope(connector: string, object: SourceObject, memberOf: (groupDnNorm: string) => boolean): ScopeExclusion | null;
  /** Inbound flow: the defaults of src/engine/flows.ts (inboundFlow) with the configured flows applied on top (add, override, or drop with `null`). */
  inbound(connector: string, kind: Kind, object: SourceObject): MvAttrs;
  /** Merge several connectors' contributions to one metaverse object: per attribute, the first non-null value in precedence order. */
  merge(contributions: { connector: string; attrs: MvAttrs }[]): MvAttrs;
  /** Soft-match join keys of a metaverse object's attributes, in rule order (values trimmed and lower-cased). */
  joinKeys(objectType: ObjType, attrs: MvAttrs): { rule: string; value: string }[];
  /** Outbound: the default SCIM resource with configured outbound flows applied (null removes). Does not mutate `resource`. */
  outbound(objectType: ObjType, mv: MvAttrs, resource: Record<string, unknown>): Record<string, unknown>;
  /** Whether the cloud side may adopt an existing cloud object with the same userName/mail that has no externalId. */
  readonly cloudSoftMatch: { enabled: boolean; attributes: ('userName' | 'emails')[] };
  /** Whether any scope rule needs group membership (the engine may skip building it otherwise). */
  readonly needsMemberOf: boolean;
  /** Whether a `rules:` section changes anything at all (false: the built-in defaults). */
  readonly isDefault: boolean;
  /** Every metaverse attribute name: the defaults' plus inbound targets. */
  readonly metaverseAttributes: readonly string[];
}

/** The metaverse attributes the default inbound flow produces (users and groups). */
export const DEFAULT_MV_ATTRIBUTES = [
  'sourceAnchor',
  'distinguishedName',
  'domainName',
  'description',
  'accountName',
  'userPrincipalName',
  'mail',
  'givenName',
  'sn',
  'displayName',
  'department',
  'title',
  'company',
  'telephoneNumber',
  'mobile',
  'employeeId',
  'accountEnabled',
] as const;

/** Metaverse attributes a rule may not set: the anchor links every object to its cloud copy. */
const READ_ONLY_MV = new Set(['sourceAnchor']);

function configError(path: ConfigPath, message: string, hint?: string): IdsyncError {
  return new IdsyncError('CONFIG_INVALID', `${path.join('.')}: ${message}`, {
    hint: hint ?? 'Correct the rule; docs/rules.md describes the rules language.',
    details: { path },
  });
}

function compile(path: ConfigPath, fn: () => Compiled): Compiled {
  try {
    return fn();
  } catch (err) {
    if (err instanceof RuleCompileError) throw configError(path, err.message);
    throw err;
  }
}

function ruleFailed(path: ConfigPath, what: string, err: unknown, details: Record<string, unknown>): IdsyncError {
  const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
  return new IdsyncError('OBJECT_INVALID', `rule ${path.join('.')} failed on ${what}: ${msg}`, {
    hint: 'Make the expression handle this object (e.g. first(attributes, "x") instead of attributes.x[0], which fails when x is absent).',
    details: { ...details, rule: path.join('.') },
    cause: err,
  });
}

/** Which scope rule excluded an object, in the words of the configuration. */
export interface ScopeExclusion {
  /** The rule's path in the configuration, e.g. rules.scope.0. */
  rule: string;
  reason: string;
}

interface ScopeProgram {
  path: ConfigPath;
  whereText?: string;
  memberOfText?: string[];
  objectType?: ObjType;
  where?: Compiled;
  memberOf?: string[];
}
interface InboundProgram {
  path: ConfigPath;
  connector?: string;
  objectType?: ObjType;
  target: string;
  program: Compiled;
}
interface OutboundProgram {
  path: ConfigPath;
  target: ScimPath;
  program: Compiled;
}

const isBool = (t: string) => t === 'bool' || t === 'dyn';
const isScalar = (t: string) => SCALAR_TYPES.has(t);

export function compileRules(config: RulesConfig | undefined, connectors: { name: string; type: string }[]): CompiledRules {
  const names = connectors.map((c) => c.name);
  const known = new Set(names);
  const checkConnector = (name: string, path: ConfigPath) => {
    if (!known.has(name)) throw configError(path, `unknown connector "${name}" (configured: ${names.join(', ') || 'none'})`);
  };
  const r = config;

  // Metaverse attributes: the defaults plus every inbound target.
  const mvNames = new Set<string>(DEFAULT_MV_ATTRIBUTES);
  (r?.inbound ?? []).forEach((rule) => mvNames.add(rule.target));
  const mvTemplate: MvAttrs = Object.fromEntries([...mvNames].map((n) => [n, null]));

  // Scope.
  const scope = new Map<string, ScopeProgram[]>();
  (r?.scope ?? []).forEach((rule, i) => {
    const path: ConfigPath = ['rules', 'scope', i];
    checkConnector(rule.connector, [...path, 'connector']);
    if (rule.where === undefined && rule.memberOf === undefined) throw configError(path, 'a scope rule needs `where`, `memberOf` or both');
    const p: ScopeProgram = { path };
    if (rule.objectType) p.objectType = rule.objectType;
    if (rule.where !== undefined) {
      const wp = [...path, 'where'];
      p.where = compile(wp, () => compileExpression(scopeEnv, rule.where!, isBool, 'a bool (true: in scope)'));
      p.whereText = rule.where;
    }
    if (rule.memberOf) {
      p.memberOfText = rule.memberOf;
      p.memberOf = rule.memberOf.map((dn, j) => {
        try {
          return normalizeDn(dn);
        } catch {
          throw configError([...path, 'memberOf', j], `"${dn}" is not a valid DN`);
        }
      });
    }
    const list = scope.get(rule.connector) ?? [];
    list.push(p);
    scope.set(rule.connector, list);
  });

  // Inbound.
  const inboundRules: InboundProgram[] = (r?.inbound ?? []).map((rule, i) => {
    const path: ConfigPath = ['rules', 'inbound', i];
    if (rule.connector !== undefined) checkConnector(rule.connector, [...path, 'connector']);
    if (READ_ONLY_MV.has(rule.target)) throw configError([...path, 'target'], `"${rule.target}" is the immutable anchor and cannot be set by a rule`);
    const program = compile([...path, 'expression'], () =>
      compileExpression(inboundEnv, rule.expression, isScalar, 'a string, bool or null (use [0], first() or .join() for a list)', mvNames),
    );
    const p: InboundProgram = { path: [...path, 'expression'], target: rule.target, program };
    if (rule.connector !== undefined) p.connector = rule.connector;
    if (rule.objectType) p.objectType = rule.objectType;
    return p;
  });

  // Precedence.
  const dupCheck = (list: string[], path: ConfigPath) => {
    const seen = new Set<string>();
    list.forEach((c, j) => {
      checkConnector(c, [...path, j]);
      if (seen.has(c)) throw configError([...path, j], `connector "${c}" is listed twice`);
      seen.add(c);
    });
  };
  const complete = (list: string[]) => [...list, ...names.filter((n) => !list.includes(n))];
  const prec = r?.precedence;
  if (prec?.default) dupCheck(prec.default, ['rules', 'precedence', 'default']);
  const defaultOrder = complete(prec?.default ?? names);
  const attrOrder = new Map<string, string[]>();
  for (const [attr, list] of Object.entries(prec?.attributes ?? {})) {
    const path: ConfigPath = ['rules', 'precedence', 'attributes', attr];
    if (!mvNames.has(attr)) throw configError(path, `unknown metaverse attribute "${attr}" (known: ${[...mvNames].sort().join(', ')})`);
    dupCheck(list, path);
    attrOrder.set(attr, complete(list));
  }
  const rank = (order: string[]) => new Map(order.map((c, i) => [c, i]));
  const defaultRank = rank(defaultOrder);
  const attrRank = new Map([...attrOrder].map(([a, o]) => [a, rank(o)]));

  // Join.
  const join = (r?.join ?? []).map((rule, i) => {
    if (!mvNames.has(rule.attribute)) {
      throw configError(['rules', 'join', i, 'attribute'], `unknown metaverse attribute "${rule.attribute}" (known: ${[...mvNames].sort().join(', ')})`);
    }
    if (rule.attribute === 'sourceAnchor') throw configError(['rules', 'join', i, 'attribute'], 'objects are always joined by anchor; list another attribute');
    return rule;
  });

  // Outbound.
  const outboundRules: Record<ObjType, OutboundProgram[]> = { user: [], group: [] };
  (r?.outbound ?? []).forEach((rule, i) => {
    const path: ConfigPath = ['rules', 'outbound', i];
    const target = parseScimPath(rule.target, rule.objectType);
    if (typeof target === 'string') throw configError([...path, 'target'], target);
    const program = compile([...path, 'expression'], () =>
      compileExpression(outboundEnv, rule.expression, isScalar, 'a string, bool, number or null', mvNames),
    );
    outboundRules[rule.objectType].push({ path: [...path, 'expression'], target, program });
  });

  const soft = r?.cloudSoftMatch;
  const cloudSoftMatch = Object.freeze({ enabled: soft?.enabled ?? false, attributes: Object.freeze([...(soft?.attributes ?? ['userName'])]) as ('userName' | 'emails')[] });

  function inScope(connector: string, object: SourceObject, memberOf: (groupDnNorm: string) => boolean): boolean {
    return explainScope(connector, object, memberOf) === null;
  }

  function explainScope(connector: string, object: SourceObject, memberOf: (groupDnNorm: string) => boolean): ScopeExclusion | null {
    const rules = scope.get(connector);
    if (!rules) return null;
    let ctx: Record<string, unknown> | undefined;
    for (const rule of rules) {
      if (rule.objectType && rule.objectType !== object.objectType) continue;
      const name = rule.path.join('.');
      if (rule.memberOf && !rule.memberOf.some((g) => memberOf(g))) {
        return { rule: name, reason: `not a direct member of any group in its memberOf (${(rule.memberOfText ?? []).join('; ')})` };
      }
      if (rule.where) {
        ctx ??= { attributes: object.attributes, dn: object.dn, objectType: object.objectType, connector };
        let v: unknown;
        try {
          v = rule.where.run(ctx);
        } catch (err) {
          throw ruleFailed([...rule.path, 'where'], object.dn, err, { connector, dn: object.dn, anchor: object.anchor });
        }
        if (v !== true) {
          if (v === false || v === null) return { rule: name, reason: `its condition \`where: ${rule.whereText ?? ''}\` is ${String(v)} for this object` };
          throw ruleFailed([...rule.path, 'where'], object.dn, new Error(`the condition returned ${typeof v}, not a bool`), { connector, dn: object.dn });
        }
      }
    }
    return null;
  }

  function inbound(connector: string, kind: Kind, object: SourceObject): MvAttrs {
    const out = inboundFlow(kind, object);
    if (inboundRules.length === 0) return out;
    let ctx: { attributes: Record<string, string[]>; dn: string; objectType: string; connector: string; mv: MvAttrs } | undefined;
    for (const rule of inboundRules) {
      if (rule.connector !== undefined && rule.connector !== connector) continue;
      if (rule.objectType && rule.objectType !== object.objectType) continue;
      ctx ??= { attributes: object.attributes, dn: object.dn, objectType: object.objectType, connector, mv: { ...mvTemplate, ...out } };
      let v: MvAttrs[string];
      try {
        v = toMvValue(rule.program.run(ctx));
      } catch (err) {
        throw ruleFailed(rule.path, object.dn, err, { connector, dn: object.dn, anchor: object.anchor, target: rule.target });
      }
      out[rule.target] = v;
      ctx.mv[rule.target] = v;
    }
    return out;
  }

  function merge(contributions: { connector: string; attrs: MvAttrs }[]): MvAttrs {
    if (contributions.length === 0) return {};
    if (contributions.length === 1) return { ...contributions[0]!.attrs };
    const byRank = (rk: Map<string, number>) =>
      [...contributions].sort((a, b) => (rk.get(a.connector) ?? Infinity) - (rk.get(b.connector) ?? Infinity));
    const ordered = byRank(defaultRank);
    const out: MvAttrs = {};
    for (const c of ordered) {
      for (const [k, v] of Object.entries(c.attrs)) {
        if (!(k in out) || (out[k] === null && v !== null)) out[k] = v;
      }
    }
    for (const [attr, rk] of attrRank) {
      if (!(attr in out)) continue;
      let value: MvAttrs[string] = null;
      for (const c of byRank(rk)) {
        const v = c.attrs[attr];
        if (v !== null && v !== undefined) {
          value = v;
          break;
        }
      }
      out[attr] = value;
    }
    return out;
  }

  function joinKeys(objectType: ObjType, attrs: MvAttrs): { rule: string; value: string }[] {
    const keys: { rule: string; value: string }[] = [];
    for (const rule of join) {
      if (rule.objectType !== objectType) continue;
      const v = attrs[rule.attribute];
      if (typeof v !== 'string') continue;
      const value = v.normalize('NFC').trim().toLowerCase();
      if (value !== '') keys.push({ rule: rule.attribute, value });
    }
    return keys;
  }

  function outbound(objectType: ObjType, mv: MvAttrs, resource: Record<string, unknown>): Record<string, unknown> {
    const rules = outboundRules[objectType];
    if (rules.length === 0) return resource;
    const out = structuredClone(resource);
    const ctx = { mv: { ...mvTemplate, ...mv }, objectType };
    for (const rule of rules) {
      let v: string | boolean | number | null;
      try {
        v = toScimValue(rule.program.run(ctx));
      } catch (err) {
        const label = String(mv.distinguishedName ?? mv.sourceAnchor ?? '(object)');
        throw ruleFailed(rule.path, label, err, { sourceAnchor: mv.sourceAnchor ?? null, target: rule.target.text });
      }
      applyScimPath(out, rule.target, v);
    }
    const required = objectType === 'user' ? 'userName' : 'displayName';
    if (typeof out[required] !== 'string' || out[required] === '') {
      const label = String(mv.distinguishedName ?? mv.sourceAnchor ?? '(object)');
      throw new IdsyncError('OBJECT_INVALID', `the outbound rules left ${label} without ${required}`, {
        hint: `A ${objectType} needs a ${required} in the cloud: make the rule that sets it return a value for this object.`,
        details: { sourceAnchor: mv.sourceAnchor ?? null, target: required },
      });
    }
    return out;
  }

  const isDefault = !r || (scope.size === 0 && inboundRules.length === 0 && !prec && join.length === 0 && rules0(outboundRules) && !cloudSoftMatch.enabled);
  return {
    inScope,
    explainScope,
    inbound,
    merge,
    joinKeys,
    outbound,
    cloudSoftMatch,
    needsMemberOf: [...scope.values()].some((l) => l.some((p) => p.memberOf)),
    isDefault,
    metaverseAttributes: Object.freeze([...mvNames]),
  };
}

function rules0(o: Record<ObjType, OutboundProgram[]>): boolean {
  return o.user.length === 0 && o.group.length === 0;
}
