/**
 * The hostile corpus of the sync side (issue 9): LDIF files, YAML configurations, DNs and attribute
 * values an attacker or an unlucky export could hand `idsync sync`, each run through the real CLI
 * (bin/idsync.js, a child process) against a real cloud directory, from a copy of one synced
 * data folder.
 *
 * The table is the fixtures beside this file: fixtures/ldif/*.ldif and fixtures/yaml/*.yaml each
 * start with an `# expect:` line (exit code, error code, line, a pattern the message must match, a
 * secret it must not show); fixtures/dns.json and fixtures/values.json hold the rest. Every case
 * asserts: the documented exit code; the error code; `file:line` where there is one; no stack
 * trace; a run that ends by itself (killed after a generous limit, never timed); and, for a
 * refused input, no state change — the connector space, metaverse, export state and outbox are as
 * they were, and the cloud holds what it held before the corpus ran.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sqlite } from '../../../src/store/sqlite-driver.js';
import { startTestCloud, type TestCloud } from '../../helpers/cloud.js';
import { inParallel } from '../../helpers/passwords.js';
import { BIN } from '../../helpers/processes.js';
import { baseLdif, bulk1200, parseExpect, USERS } from './corpus.js';

const FIXTURES = path.join(import.meta.dirname, 'fixtures');
/** Generous: a hostile input must not hang the command; no wall-clock assertion beyond "it ended". */
const KILL_AFTER_MS = 180_000;

interface Outcome {
  exit: number | null;
  out: string;
  state: string;
}

function configYaml(cloud: TestCloud): string {
  return `dataDir: ./data\nconnectors:\n  - name: hr\n    type: ldif\n    path: ./source.ldif\ncloud:\n  url: ${cloud.url}\n  auth: { type: client_credentials, clientId: ${cloud.syncClientId} }\n`;
}

function run(args: string[], cwd: string): Promise<{ exit: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, IDSYNC_CONFIG: '', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
    child.on('close', (exit) => {
      clearTimeout(timer);
      resolve({ exit, out });
    });
  });
}

/** A digest of everything a refused input must leave alone (run records and events may grow). */
function stateDigest(dataDir: string): string {
  const file = path.join(dataDir, 'idsync.db');
  if (!existsSync(file)) return 'no database';
  const db = new Sqlite(file, { readonly: true, fileMustExist: true });
  try {
    const h = createHash('sha256');
    for (const t of ['cs_objects', 'cs_members', 'mv_objects', 'mv_members', 'export_objects', 'phs_users', 'watermarks']) {
      h.update(t);
      h.update(JSON.stringify(db.prepare(`SELECT * FROM ${t} ORDER BY 1, 2`).raw().all()));
    }
    return h.digest('hex');
  } finally {
    db.close();
  }
}

const STACK = /^\s+at .+:\d+:\d+\)?$|node:internal|\bTypeError\b|\bRangeError\b|\bReferenceError\b/m;

describe('hostile inputs to `idsync sync` (the corpus in test/hostile/sync/fixtures)', () => {
  let cloud: TestCloud;
  let work: string;
  let baseline: string;
  let baselineState: string;
  let cloudBefore: string;
  const outcomes = new Map<string, Promise<Outcome>>();
  const ldifCases = readdirSync(path.join(FIXTURES, 'ldif')).sort();
  const yamlCases = readdirSync(path.join(FIXTURES, 'yaml')).sort();
  const dnCases = JSON.parse(readFileSync(path.join(FIXTURES, 'dns.json'), 'utf8')) as { name: string; dn: string; exit: number; code?: string; match?: string }[];
  const base = baseLdif();
  const baseLines = base.split('\n').length - 1;

  const cloudSnapshot = async (): Promise<string> => {
    const users = (await cloud.scim<{ Resources: unknown[] }>('GET', '/Users?count=1000&sortBy=externalId')).body.Resources;
    const groups = (await cloud.scim<{ Resources: unknown[] }>('GET', '/Groups?count=1000&sortBy=externalId')).body.Resources;
    return JSON.stringify([users, groups]);
  };

  /** A fresh copy of the synced baseline folder for one case. */
  const caseDir = (name: string): string => {
    const dir = path.join(work, name.replace(/[^a-z0-9.-]/gi, '_'));
    cpSync(baseline, dir, { recursive: true });
    return dir;
  };

  const runCase = async (dir: string, args: string[]): Promise<Outcome> => {
    const r = await run(['-c', path.join(dir, 'idsync.yaml'), ...args], dir);
    return { ...r, state: stateDigest(path.join(dir, 'data')) };
  };

  before(async () => {
    cloud = await startTestCloud();
    work = mkdtempSync(path.join(tmpdir(), 'idsync-hostile-sync-'));
    baseline = path.join(work, '_baseline');
    mkdirSync(baseline);
    writeFileSync(path.join(baseline, 'idsync.yaml'), configYaml(cloud));
    writeFileSync(path.join(baseline, 'source.ldif'), base);
    const set = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [BIN, '-c', path.join(baseline, 'idsync.yaml'), 'credentials', 'set', 'cloud', '--no-validate'], { stdio: ['pipe', 'ignore', 'ignore'] });
      child.stdin.end(`${cloud.syncSecret}\n`);
      child.on('close', resolve);
    });
    assert.equal(set, 0);
    const first = await run(['-c', path.join(baseline, 'idsync.yaml'), 'sync'], baseline);
    assert.equal(first.exit, 0, first.out);
    baselineState = stateDigest(path.join(baseline, 'data'));
    cloudBefore = await cloudSnapshot();
    assert.equal(JSON.parse(cloudBefore)[0].length, USERS);

    // Every refused-input case starts at once (two at a time); each test below awaits its own.
    const jobs: Array<[string, () => Promise<Outcome>]> = [];
    for (const f of ldifCases) {
      jobs.push([`ldif/${f}`, async () => {
        const text = readFileSync(path.join(FIXTURES, 'ldif', f), 'utf8');
        const nl = text.indexOf('\n');
        const exp = parseExpect(text.slice(0, nl), f);
        const dir = caseDir(`ldif-${f}`);
        const body = exp.prefix === 'bulk1200' ? `${text.slice(0, nl + 1)}${bulk1200()}${text.slice(nl + 1)}` : text;
        writeFileSync(path.join(dir, 'source.ldif'), `${base}${body}`);
        return runCase(dir, ['sync']);
      }]);
    }
    for (const f of yamlCases) {
      jobs.push([`yaml/${f}`, async () => {
        let text = readFileSync(path.join(FIXTURES, 'yaml', f), 'utf8').replaceAll('${CLOUD_URL}', cloud.url).replaceAll('${CLIENT_ID}', cloud.syncClientId);
        const exp = parseExpect(text.slice(0, text.indexOf('\n')), f);
        if (exp.suffix === 'pad1m') text += `# ${'x'.repeat(1024 * 1024 + 16)}\n`;
        const dir = caseDir(`yaml-${f}`);
        writeFileSync(path.join(dir, 'idsync.yaml'), text);
        return runCase(dir, ['sync']);
      }]);
    }
    for (const c of dnCases) {
      jobs.push([`dn/${c.name}`, async () => runCase(caseDir(`dn-${c.name}`), ['sync', '--object', c.dn])]);
    }
    const resolvers = new Map<string, (o: Outcome) => void>();
    for (const [name] of jobs) outcomes.set(name, new Promise((resolve) => resolvers.set(name, resolve)));
    void inParallel(jobs, 2, async ([name, job]) => {
      const o = await job().catch((err: unknown) => ({ exit: -1, out: String((err as Error).stack), state: '' }));
      resolvers.get(name)?.(o);
    });
  });

  after(async () => {
    await cloud?.close();
    if (work) rmSync(work, { recursive: true, force: true });
    if (cloud) rmSync(cloud.dataDir, { recursive: true, force: true });
  });

  const common = (o: Outcome, exp: { exit: number; code?: string; match?: RegExp; hidden?: string }, where?: string) => {
    assert.notEqual(o.exit, null, `the command ended by itself (killed after ${KILL_AFTER_MS} ms):\n${o.out}`);
    assert.equal(o.exit, exp.exit, o.out);
    if (exp.code) assert.ok(o.out.includes(exp.code), `names ${exp.code}:\n${o.out}`);
    if (where) assert.ok(o.out.includes(where), `points at ${where}:\n${o.out}`);
    if (exp.match) assert.match(o.out, exp.match);
    if (exp.hidden) assert.ok(!o.out.includes(exp.hidden), 'the secret value is not shown');
    assert.doesNotMatch(o.out, STACK, 'no stack trace');
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(o.out, /\x1b/, 'no raw terminal escape reaches the terminal');
  };

  for (const f of ldifCases) {
    test(`LDIF ${f}`, async () => {
      const text = readFileSync(path.join(FIXTURES, 'ldif', f), 'utf8');
      const exp = parseExpect(text.slice(0, text.indexOf('\n')), f);
      // "@N" in a pattern is line N of the case file, as the combined file numbers it.
      if (exp.match) exp.match = new RegExp(exp.match.source.replace(/@(\d+)/g, (_m, n: string) => String(baseLines + Number(n))), 'i');
      const o = await outcomes.get(`ldif/${f}`)!;
      common(o, exp, exp.line === undefined ? undefined : `source.ldif:${baseLines + exp.line}`);
      assert.equal(o.state, baselineState, 'nothing was staged, synced or exported');
    });
  }

  for (const f of yamlCases) {
    test(`YAML ${f}`, async () => {
      const text = readFileSync(path.join(FIXTURES, 'yaml', f), 'utf8');
      const exp = parseExpect(text.slice(0, text.indexOf('\n')), f);
      const o = await outcomes.get(`yaml/${f}`)!;
      common(o, exp, exp.line === undefined ? undefined : `idsync.yaml:${exp.line}`);
      assert.equal(o.state, baselineState, 'the data folder is untouched');
    });
  }

  for (const c of dnCases) {
    test(`DN ${c.name} (sync --object)`, async () => {
      const o = await outcomes.get(`dn/${c.name}`)!;
      common(o, { exit: c.exit, ...(c.code ? { code: c.code } : {}), ...(c.match ? { match: new RegExp(c.match, 'i') } : {}) });
      assert.equal(o.state, baselineState, 'an object that is not in the source changes nothing');
    });
  }

  test('the cloud holds exactly what it held before the corpus ran', async () => {
    await Promise.all(outcomes.values());
    assert.equal(await cloudSnapshot(), cloudBefore);
  });
});
