/**
 * The CEL side of the rules: the environments expressions are checked against, the helper
 * functions they may call, a compile-time safety walk and the conversion of results.
 *
 * Safety: CEL has no statements, loops or user functions, and @marcbachmann/cel-js reads only own
 * properties of maps; on top of that every expression is walked at load and rejected when it names
 * a JavaScript prototype member (constructor, __proto__, prototype, toString...). Regular
 * expressions (`matches`) must be literals without nested quantifiers (no catastrophic backtracking).
 */
import { Environment, type ASTNode, type ParseResult } from '@marcbachmann/cel-js';
import { domainFromDn } from '../engine/flows.js';

/** Names that reach JavaScript internals when used as a property, method or key. */
const FORBIDDEN_NAMES = new Set<string>([
  '__proto__',
  'prototype',
  'constructor',
  ...Object.getOwnPropertyNames(Object.prototype),
  'apply',
  'bind',
  'call',
  'caller',
  'arguments',
]);

export function isForbiddenName(name: string): boolean {
  return FORBIDDEN_NAMES.has(name) || name.startsWith('__');
}

type Str = string | null | undefined;

function s(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new Error(`expected a string, got ${Array.isArray(v) ? 'a list' : typeof v}`);
}

function own(attrs: unknown, name: string): string[] | undefined {
  if (attrs instanceof Map) return attrs.get(name) as string[] | undefined;
  if (attrs && typeof attrs === 'object' && Object.hasOwn(attrs, name)) return (attrs as Record<string, string[]>)[name];
  return undefined;
}

/** GeneralizedTime (20240115143045.0Z), AD FILETIME (100 ns ticks since 1601) or ISO → ISO 8601 UTC. */
export function toIsoDate(v: string): string | null {
  const g = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:[.,]\d+)?(Z|[+-]\d{4})?$/.exec(v);
  if (g) {
    const tz = !g[7] || g[7] === 'Z' ? 'Z' : `${g[7].slice(0, 3)}:${g[7].slice(3)}`;
    const d = new Date(`${g[1]}-${g[2]}-${g[3]}T${g[4]}:${g[5]}:${g[6] ?? '00'}${tz}`);
    return Number.isNaN(d.getTime()) ? null : d.toISOString().replace('.000Z', 'Z');
  }
  if (/^\d{15,19}$/.test(v)) {
    const ticks = BigInt(v);
    // 0 and 0x7FFFFFFFFFFFFFFF mean "never" in AD (accountExpires).
    if (ticks === 0n || ticks === 0x7fffffffffffffffn) return null;
    const ms = Number(ticks / 10000n) - 11644473600000;
    const d = new Date(ms);
    return Number.isNaN(d.getTime()) ? null : d.toISOString().replace('.000Z', 'Z');
  }
  const d = new Date(v);
  return /^\d{4}-\d{2}-\d{2}/.test(v) && !Number.isNaN(d.getTime()) ? d.toISOString().replace('.000Z', 'Z') : null;
}

function base(): Environment {
  const env = new Environment({ limits: { maxAstNodes: 1000, maxDepth: 32, maxListElements: 256, maxMapEntries: 256, maxCallArguments: 8 } });
  const fn = (sig: string, h: (...a: never[]) => unknown, description: string) =>
    env.registerFunction(sig, h as (...a: unknown[]) => unknown, { description });
  fn('first(map<string, list<string>>, string): dyn', (m: unknown, k: string) => {
    const v = own(m, k);
    return v && v.length > 0 && v[0] !== '' ? v[0] : null;
  }, 'first value of a source attribute, null when absent or empty');
  fn('values(map<string, list<string>>, string): list<string>', (m: unknown, k: string) => own(m, k) ?? [], 'all values of a source attribute, [] when absent');
  fn('lower(dyn): dyn', (v: Str) => s(v)?.toLowerCase() ?? null, 'lower-case; null stays null');
  fn('upper(dyn): dyn', (v: Str) => s(v)?.toUpperCase() ?? null, 'upper-case; null stays null');
  fn('trim(dyn): dyn', (v: Str) => s(v)?.trim() ?? null, 'strip leading and trailing white space; null stays null');
  fn('replace(dyn, string, string): dyn', (v: Str, a: string, b: string) => {
    const x = s(v);
    return x === null ? null : a === '' ? x : x.split(a).join(b);
  }, 'replace every occurrence of a literal text (not a regular expression); null stays null');
  fn('coalesce(dyn, dyn): dyn', (a: unknown, b: unknown) => pick(a, b), 'first argument that is neither null nor ""');
  fn('coalesce(dyn, dyn, dyn): dyn', (a: unknown, b: unknown, c: unknown) => pick(a, b, c), 'first argument that is neither null nor ""');
  fn('coalesce(dyn, dyn, dyn, dyn): dyn', (a: unknown, b: unknown, c: unknown, d: unknown) => pick(a, b, c, d), 'first argument that is neither null nor ""');
  fn('isoDate(dyn): dyn', (v: Str) => {
    const x = s(v);
    return x === null ? null : toIsoDate(x.trim());
  }, 'GeneralizedTime, AD FILETIME or ISO date → ISO 8601 UTC; null when not a date or "never"');
  fn('rdn(string): string', (dn: string) => {
    const m = /^[^=]+=((?:\\.|[^,\\])*)/.exec(dn);
    return m ? m[1]!.replace(/\\(.)/g, '$1') : '';
  }, 'value of the first RDN of a DN: rdn("CN=Ann Lee,OU=Staff,DC=x") = "Ann Lee"');
  fn('dnsDomain(string): dyn', (dn: string) => domainFromDn(dn), 'the DC= parts of a DN as a DNS name (lower-case), null when there are none');
  fn('parentDn(string): string', (dn: string) => {
    const m = /^(?:\\.|[^,\\])*,\s*(.*)$/.exec(dn);
    return m ? m[1]! : '';
  }, 'the DN without its first RDN');
  return env;
}

function pick(...vs: unknown[]): unknown {
  for (const v of vs) if (v !== null && v !== undefined && v !== '') return v;
  return null;
}

const ROOT = base();
/** Scope conditions: the source object. */
export const scopeEnv = ROOT.clone()
  .registerVariable('attributes', 'map<string, list<string>>', { description: 'source attributes: lower-case name → values' })
  .registerVariable('dn', 'string')
  .registerVariable('objectType', 'string')
  .registerVariable('connector', 'string');
/** Inbound flows: the source object plus `mv`, the metaverse attributes computed so far. */
export const inboundEnv = ROOT.clone()
  .registerVariable('attributes', 'map<string, list<string>>')
  .registerVariable('dn', 'string')
  .registerVariable('objectType', 'string')
  .registerVariable('connector', 'string')
  .registerVariable('mv', 'map<string, dyn>');
/** Outbound flows: the metaverse object. */
export const outboundEnv = ROOT.clone().registerVariable('mv', 'map<string, dyn>').registerVariable('objectType', 'string');

export interface Compiled {
  run: ParseResult;
  type: string;
}

export class RuleCompileError extends Error {}

function isNode(x: unknown): x is ASTNode {
  return typeof x === 'object' && x !== null && typeof (x as { op?: unknown }).op === 'string' && 'args' in x;
}

/** Walks the AST: no prototype names, known `mv.` attributes, literal and simple regexes only. */
function walk(n: ASTNode, knownMv: Set<string> | undefined): void {
  const fail = (msg: string): never => {
    throw new RuleCompileError(msg);
  };
  switch (n.op) {
    case 'value':
      if (typeof n.args === 'string' && isForbiddenName(n.args)) fail(`"${n.args}" is not allowed in an expression`);
      return;
    case 'id':
      if (isForbiddenName(n.args)) fail(`"${n.args}" is not allowed in an expression`);
      return;
    case '.':
    case '.?': {
      const [obj, field] = n.args;
      if (isForbiddenName(field)) fail(`".${field}" is not allowed in an expression`);
      if (knownMv && obj.op === 'id' && obj.args === 'mv' && !knownMv.has(field)) {
        fail(`unknown metaverse attribute "mv.${field}" (known: ${[...knownMv].sort().join(', ')})`);
      }
      walk(obj, knownMv);
      return;
    }
    case 'rcall': {
      const [name, recv, args] = n.args;
      if (isForbiddenName(name)) fail(`".${name}()" is not allowed in an expression`);
      if (name === 'matches') {
        const p = args[0];
        if (!p || p.op !== 'value' || typeof p.args !== 'string') fail('matches() takes a literal regular expression');
        const re = (p as { args: string }).args;
        if (re.length > 200 || /\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)\s*[+*{]/.test(re)) {
          fail('matches(): the regular expression is too long or has a nested quantifier such as (a+)+');
        }
      }
      walk(recv, knownMv);
      for (const a of args) walk(a, knownMv);
      return;
    }
    case 'call': {
      const [name, args] = n.args;
      if (isForbiddenName(name)) fail(`"${name}()" is not allowed in an expression`);
      if (name === 'matches') fail('write matches() as a method: s.matches("regex")');
      for (const a of args) walk(a, knownMv);
      return;
    }
    default: {
      const args: unknown = n.args;
      const visit = (x: unknown): void => {
        if (isNode(x)) walk(x, knownMv);
        else if (Array.isArray(x)) x.forEach(visit);
      };
      visit(args);
    }
  }
}

/**
 * Parses, safety-checks and type-checks one expression. Throws RuleCompileError with a readable
 * message; the caller adds the configuration path.
 */
export function compileExpression(env: Environment, source: string, allowed: (type: string) => boolean, expected: string, knownMv?: Set<string>): Compiled {
  let run: ParseResult;
  try {
    run = env.parse(source);
  } catch (err) {
    throw new RuleCompileError(`syntax error: ${celMessage(err)}`);
  }
  walk(run.ast, knownMv);
  const c = run.check();
  if (!c.valid) throw new RuleCompileError(`type error: ${celMessage(c.error)}`);
  const type = c.type ?? 'dyn';
  if (!allowed(type)) throw new RuleCompileError(`the expression returns ${type}; expected ${expected}`);
  return { run, type };
}

function celMessage(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { summary?: unknown; message?: unknown };
    if (typeof e.message === 'string') {
      // cel-js appends a source excerpt with a caret; keep it, indented, for the YAML error report.
      return e.message
        .split('\n')
        .filter((l) => l.trim() !== '')
        .join('\n      ');
    }
    if (typeof e.summary === 'string') return e.summary;
  }
  return String(err);
}

export const SCALAR_TYPES = new Set(['string', 'bool', 'null', 'dyn', 'int', 'uint', 'double']);

/** A CEL result as a metaverse value: string | boolean | null ("" → null, numbers → decimal text). */
export function toMvValue(v: unknown): string | boolean | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v === '' ? null : v;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : null;
  if (typeof v === 'object' && v !== null && 'valueOf' in v && typeof (v as { valueOf: () => unknown }).valueOf() === 'bigint') {
    return String((v as { valueOf: () => bigint }).valueOf()); // uint wrapper
  }
  throw new Error(`the result must be a string, bool or null, got ${Array.isArray(v) ? 'a list' : typeof v}`);
}

/** A CEL result as a SCIM value: string | boolean | number | null (BigInt → number when safe). */
export function toScimValue(v: unknown): string | boolean | number | null {
  if (typeof v === 'bigint') {
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v.toString();
  }
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  return toMvValue(v);
}
