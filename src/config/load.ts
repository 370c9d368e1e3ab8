/**
 * Loads and validates the YAML configuration. Every error names the file, the line, the key and
 * what is expected, so an administrator can fix it without reading code.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { LineCounter, parseDocument, isAlias, isNode, visit, type Document } from 'yaml';
import type { ZodIssue } from 'zod';
import { IdsyncError } from '../core/errors.js';
import { compileRules, type CompiledRules } from '../rules/index.js';
import { configSchema, type Config } from './schema.js';

export interface LoadedConfig {
  config: Config;
  /** The `rules:` section compiled (the built-in defaults when absent). */
  rules: CompiledRules;
  /** Absolute path of the configuration file. */
  file: string;
  /** Absolute data directory. */
  dataDir: string;
  /** Resolves a path written in the file relative to the file's folder. */
  resolvePath(p: string): string;
}

export const DEFAULT_CONFIG_FILE = 'idsync.yaml';
export const SYSTEM_CONFIG_FILE = '/etc/idsync/idsync.yaml';

/**
 * Where the configuration is, first match wins: `--config FILE`, `$IDSYNC_CONFIG`, `./idsync.yaml`,
 * `/etc/idsync/idsync.yaml`. When none exists, `./idsync.yaml` (where `init` writes a new one, and
 * what a "not found" error names). An empty value counts as unset.
 */
export function configPathFrom(explicit?: string, env: NodeJS.ProcessEnv = process.env, systemFile = SYSTEM_CONFIG_FILE): string {
  if (explicit) return path.resolve(explicit);
  if (env.IDSYNC_CONFIG) return path.resolve(env.IDSYNC_CONFIG);
  const local = path.resolve(DEFAULT_CONFIG_FILE);
  if (existsSync(local) || !existsSync(systemFile)) return local;
  return systemFile;
}

export function loadConfig(file: string): LoadedConfig {
  const abs = path.resolve(file);
  let text: string;
  try {
    // What it is before reading it: a FIFO blocked for ever, /dev/zero or a huge file filled memory.
    const st = statSync(abs);
    if (!st.isFile()) {
      throw new IdsyncError('CONFIG_INVALID', `${abs} is not a regular file (${st.isDirectory() ? 'a directory' : 'a device, FIFO or socket'})`, {
        hint: 'Point --config (or IDSYNC_CONFIG) at the idsync.yaml file itself.',
        details: { file: abs },
      });
    }
    if (st.size > MAX_CONFIG_BYTES) {
      throw new IdsyncError('CONFIG_INVALID', `${abs}: the configuration file is larger than ${MAX_CONFIG_BYTES / 1024} KiB`, {
        hint: 'Point --config at the idsync.yaml written by `idsync init`; data (LDIF, CA files) belongs in files the configuration names.',
        details: { file: abs },
      });
    }
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    if (err instanceof IdsyncError) throw err;
    throw new IdsyncError('CONFIG_NOT_FOUND', `cannot read configuration file ${abs}: ${(err as NodeJS.ErrnoException).code ?? err}`, {
      hint: `Create one with \`idsync init\`, or point at it with --config FILE or IDSYNC_CONFIG (looked for: --config, $IDSYNC_CONFIG, ./${DEFAULT_CONFIG_FILE}, ${SYSTEM_CONFIG_FILE}).`,
      details: { file: abs },
    });
  }
  return parseConfigText(text, abs);
}

/** A configuration is a page of YAML: anything much bigger is a mistake or an attack, refused before parsing. */
export const MAX_CONFIG_BYTES = 1024 * 1024;
/** Aliases a configuration may expand (an "alias bomb" expands a few lines into billions of nodes). */
const MAX_ALIAS_COUNT = 100;

export function parseConfigText(text: string, file: string): LoadedConfig {
  if (Buffer.byteLength(text, 'utf8') > MAX_CONFIG_BYTES) {
    throw new IdsyncError('CONFIG_INVALID', `${file}: the configuration file is larger than ${MAX_CONFIG_BYTES / 1024} KiB`, {
      hint: 'Point --config at the idsync.yaml written by `idsync init`; data (LDIF, CA files) belongs in files the configuration names.',
      details: { file },
    });
  }
  const lineCounter = new LineCounter();
  let doc: Document;
  let js: unknown;
  try {
    doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
    js = doc.errors.length > 0 ? undefined : doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    // The yaml library refuses an alias bomb (or runs out of stack on absurd nesting) by throwing.
    const line = firstAliasLine(text);
    const why = /alias/i.test((err as Error).message) ? 'too many aliases expanded (a YAML "alias bomb"?)' : 'the YAML is nested too deeply or is too complex to read';
    throw new IdsyncError('CONFIG_INVALID', `${file}${line ? `:${line}` : ''}: ${why}`, {
      hint: 'Write the configuration out without anchors and aliases (&name / *name), as `idsync init` does.',
      details: { file, ...(line ? { line } : {}) },
    });
  }
  // A tag the schema does not know (!!js/function, !!python/object...) is not silently read as text.
  const tagProblem = doc.warnings.find((w) => w.code === 'TAG_RESOLVE_FAILED');
  if (doc.errors.length === 0 && tagProblem) {
    const pos = lineCounter.linePos(tagProblem.pos[0]);
    throw new IdsyncError('CONFIG_INVALID', `${file}:${pos.line}:${pos.col}: unsupported YAML tag: ${tagProblem.message.split('\n')[0]}`, {
      hint: 'Remove the tag (the "!!..." before the value); the configuration holds plain strings, numbers, booleans, lists and maps.',
      details: { file, line: pos.line, column: pos.col },
    });
  }
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = lineCounter.linePos(e.pos[0]);
    throw new IdsyncError('CONFIG_INVALID', `${file}:${pos.line}:${pos.col}: YAML syntax error: ${e.message.split('\n')[0]}`, {
      hint: 'Fix the YAML syntax at that line (indentation, quotes, colons).',
      details: { file, line: pos.line, column: pos.col },
    });
  }
  const result = configSchema.safeParse(js ?? {});
  if (!result.success) {
    const lines = result.error.issues.slice(0, 10).map((issue) => describeIssue(issue, doc, lineCounter, file));
    const first = result.error.issues[0]!;
    throw new IdsyncError('CONFIG_INVALID', `invalid configuration:\n  ${lines.join('\n  ')}`, {
      hint: 'Correct the keys listed above; `docs/configuration.md` describes every key.',
      details: { file, key: first.path.join('.'), line: lineOf(first.path, doc, lineCounter) },
    });
  }
  const config = result.data;
  let rules: CompiledRules;
  try {
    rules = compileRules(config.rules, config.connectors);
  } catch (err) {
    // A rule that parses as YAML but not as a rule (bad expression, unknown connector...): point at its line.
    if (err instanceof IdsyncError && err.code === 'CONFIG_INVALID' && Array.isArray(err.details.path)) {
      const p = err.details.path as (string | number)[];
      const line = lineOf(p, doc, lineCounter);
      throw new IdsyncError('CONFIG_INVALID', `invalid configuration:\n  ${file}${line ? `:${line}` : ''}: ${err.message}`, {
        hint: err.hint ?? 'Correct the rule; docs/rules.md describes the rules language.',
        details: { file, key: p.join('.'), line },
      });
    }
    throw err;
  }
  const dir = path.dirname(file);
  const resolvePath = (p: string) => path.resolve(dir, p);
  return { config, rules, file, dataDir: resolvePath(config.dataDir), resolvePath };
}

/** The line of the first alias (*name) in the text, when it parses far enough to find one. */
function firstAliasLine(text: string): number | undefined {
  try {
    const lc = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
    let line: number | undefined;
    visit(doc, {
      Alias(_key, node) {
        if (isAlias(node) && node.range) line = lc.linePos(node.range[0]).line;
        return visit.BREAK;
      },
    });
    return line;
  } catch {
    return undefined;
  }
}

function lineOf(p: (string | number)[], doc: Document, lc: LineCounter): number | undefined {
  // Walk up the path until a node with a position exists (a missing key points at its parent).
  for (let n = p.length; n >= 0; n--) {
    const node = doc.getIn(p.slice(0, n), true);
    if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
  }
  return undefined;
}

function describeIssue(issue: ZodIssue, doc: Document, lc: LineCounter, file: string): string {
  const key = issue.path.length ? issue.path.join('.') : '(top level)';
  const line = lineOf(issue.path, doc, lc);
  let what = issue.message;
  if (issue.code === 'unrecognized_keys') what = `unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  if (issue.code === 'invalid_union_discriminator') what = `expected one of ${issue.options.map((o) => `"${String(o)}"`).join(', ')}`;
  if (issue.code === 'invalid_type' && issue.received === 'undefined') what = `missing required key (expected ${issue.expected})`;
  return `${file}${line ? `:${line}` : ''}: ${key}: ${what}`;
}
