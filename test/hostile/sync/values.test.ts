/**
 * The hostile corpus, part two: inputs idsync accepts by a documented rule rather than refuses.
 *  - attribute values with control characters (fixtures/values/*.ldif): NUL, C0 controls and DEL
 *    are removed before staging with event 6006, tab / CR / LF kept; the cloud never receives a
 *    control character, and `sync`, `runs` and `events` print none raw;
 *  - a truncated or empty LDIF file: the default deletion threshold ("500 or 10%") stops the export
 *    (exit 1, event 116), the cloud keeps every object;
 *  - a reader that goes away (`idsync ... --json | head`): the command ends quietly.
 * Real CLI (child processes), real cloud directory, production defaults.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestCloud, type TestCloud } from '../../helpers/cloud.js';
import { BIN } from '../../helpers/processes.js';
import { baseLdif, parseExpect } from './corpus.js';

const FIXTURES = path.join(import.meta.dirname, 'fixtures', 'values');
const KILL_AFTER_MS = 180_000;
// eslint-disable-next-line no-control-regex
const C0 = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
const STACK = /^\s+at .+:\d+:\d+\)?$|node:internal|EPIPE/m;

function run(args: string[], cwd: string, onStdout?: (child: ReturnType<typeof spawn>) => void): Promise<{ exit: number | null; out: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, IDSYNC_CONFIG: '', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      onStdout?.(child);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
    child.on('close', (exit) => {
      clearTimeout(timer);
      resolve({ exit, out: out + stderr, stderr });
    });
  });
}

/** Every string in a JSON value. */
function strings(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) for (const x of v) strings(x, out);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) strings(x, out);
  return out;
}

describe('hostile values and truncated files: accepted or stopped by a documented rule', () => {
  let cloud: TestCloud;
  let work: string;
  let baseline: string;
  const base = baseLdif();
  const cfg = (dir: string) => ['-c', path.join(dir, 'idsync.yaml')];
  const copy = (name: string) => {
    const dir = path.join(work, name);
    cpSync(baseline, dir, { recursive: true });
    return dir;
  };
  const cloudIds = async () => {
    const users = (await cloud.scim<{ Resources: { externalId: string }[] }>('GET', '/Users?count=1000')).body.Resources.map((u) => u.externalId);
    const groups = (await cloud.scim<{ Resources: { externalId: string }[] }>('GET', '/Groups?count=1000')).body.Resources.map((g) => g.externalId);
    return [...users, ...groups].sort();
  };

  before(async () => {
    cloud = await startTestCloud();
    work = mkdtempSync(path.join(tmpdir(), 'idsync-hostile-values-'));
    baseline = path.join(work, '_baseline');
    mkdirSync(baseline);
    writeFileSync(
      path.join(baseline, 'idsync.yaml'),
      `dataDir: ./data\nconnectors:\n  - name: hr\n    type: ldif\n    path: ./source.ldif\ncloud:\n  url: ${cloud.url}\n  auth: { type: client_credentials, clientId: ${cloud.syncClientId} }\n`,
    );
    writeFileSync(path.join(baseline, 'source.ldif'), base);
    const set = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [BIN, ...cfg(baseline), 'credentials', 'set', 'cloud', '--no-validate'], { stdio: ['pipe', 'ignore', 'ignore'] });
      child.stdin.end(`${cloud.syncSecret}\n`);
      child.on('close', resolve);
    });
    assert.equal(set, 0);
    const first = await run([...cfg(baseline), 'sync'], baseline);
    assert.equal(first.exit, 0, first.out);
  });

  after(async () => {
    await cloud?.close();
    if (work) rmSync(work, { recursive: true, force: true });
    if (cloud) rmSync(cloud.dataDir, { recursive: true, force: true });
  });

  test('the data folder is private: 0700, and idsync.db, -wal, -shm and secret.key 0600', () => {
    const data = path.join(baseline, 'data');
    assert.equal(statSync(data).mode & 0o777, 0o700);
    const files = readdirSync(data);
    for (const f of ['idsync.db', 'secret.key']) assert.ok(files.includes(f), `${f} exists`);
    for (const f of files) assert.equal(statSync(path.join(data, f)).mode & 0o077, 0, `${f} is readable by its owner only`);
  });

  for (const f of readdirSync(FIXTURES).sort()) {
    test(`value ${f}`, async () => {
      const text = readFileSync(path.join(FIXTURES, f), 'utf8');
      const nl = text.indexOf('\n');
      const exp = parseExpect(text.slice(0, nl), f);
      const kv = new Map(text.slice(text.indexOf(':') + 1, nl).split(' | ').map((p) => [p.slice(0, p.indexOf('=')).trim(), p.slice(p.indexOf('=') + 1)] as const));
      const anchor = kv.get('anchor')!;
      const dir = copy(f);
      writeFileSync(path.join(dir, 'source.ldif'), `${base}${text}`);
      const r = await run([...cfg(dir), 'sync'], dir);
      assert.notEqual(r.exit, null, 'ended by itself');
      assert.equal(r.exit, exp.exit, r.out);
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(r.out, /[\x00-\x08\x0b-\x1f\x7f]/, 'no raw control character on the terminal');
      assert.doesNotMatch(r.out, STACK);

      const kind = text.includes('groupOfNames') ? 'Groups' : 'Users';
      const found = (await cloud.scim<{ Resources: Record<string, unknown>[] }>('GET', `/${kind}?filter=${encodeURIComponent(`externalId eq "${anchor}"`)}`)).body.Resources;
      assert.equal(found.length, 1, `${anchor} was exported`);
      for (const s of strings(found[0])) assert.doesNotMatch(s, C0, `the cloud holds no control character: ${JSON.stringify(s)}`);
      const expectValue = kv.get('expect');
      if (expectValue) {
        const [attr, value] = [expectValue.slice(0, expectValue.indexOf(':')), expectValue.slice(expectValue.indexOf(':') + 1)];
        assert.equal(found[0]![attr], value);
      }

      const events = JSON.parse((await run([...cfg(dir), 'events', '--id', '6006', '--json'], dir)).out) as { id: number; message: string }[];
      if (kv.get('event') === '6006') {
        assert.equal(events.length, 1, 'one event 6006 for the import');
        assert.doesNotMatch(events[0]!.message, C0);
      } else assert.equal(events.length, 0, 'no event 6006 when nothing was removed');

      // Human output of the commands an operator reads next: nothing raw.
      for (const args of [['runs'], ['runs', '2'], ['events'], ['sync', '--preview']]) {
        const h = await run([...cfg(dir), ...args], dir);
        // eslint-disable-next-line no-control-regex
        assert.doesNotMatch(h.out, /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]/, `idsync ${args.join(' ')} prints no raw control character`);
        assert.doesNotMatch(h.out, STACK);
      }
    });
  }

  for (const [name, content] of [
    ['an empty file', ''],
    ['a file truncated at a record boundary (the first third)', base.slice(0, base.indexOf('dn: uid=u10,'))],
    ['a file with only the version line', 'version: 1\n'],
  ] as const) {
    test(`${name}: the default deletion threshold stops the export, the cloud keeps everything`, async () => {
      const before = await cloudIds();
      const dir = copy(name.replace(/[^a-z0-9]+/gi, '-'));
      writeFileSync(path.join(dir, 'source.ldif'), content);
      const r = await run([...cfg(dir), 'sync'], dir);
      assert.equal(r.exit, 1, r.out);
      assert.match(r.out, /DELETION_THRESHOLD_EXCEEDED/);
      assert.match(r.out, /500 or 10%/);
      assert.doesNotMatch(r.out, STACK);
      assert.deepEqual(await cloudIds(), before, 'nothing was deleted in the cloud');
      const events = JSON.parse((await run([...cfg(dir), 'events', '--id', '116', '--json'], dir)).out) as unknown[];
      assert.equal(events.length, 1, 'event 116');
    });
  }

  test('one user removed from a small directory: below the threshold, exported without --allow-deletes', async () => {
    const dir = copy('one-removed');
    const start = base.indexOf('dn: uid=u29,');
    writeFileSync(path.join(dir, 'source.ldif'), base.slice(0, start) + base.slice(base.indexOf('\n\n', start) + 2).replace('member: uid=u29,ou=people,dc=lab,dc=test\n', ''));
    const r = await run([...cfg(dir), 'sync', '--json'], dir);
    assert.equal(r.exit, 0, r.out);
    const run1 = JSON.parse(r.out) as { steps: { step: string; deletes: number }[] };
    assert.equal(run1.steps.find((s) => s.step === 'export')?.deletes, 1);
  });

  test('`--json | head`: a reader that goes away ends the command quietly (EPIPE)', async () => {
    const dir = copy('epipe');
    const users = Array.from({ length: 1500 }, (_, i) => `dn: uid=p${i},ou=people,dc=lab,dc=test\nobjectClass: inetOrgPerson\nuid: p${i}\ncn: p${i}\nsn: p\nmail: p${i}@lab.test\nentryUUID: pipe-${i}\n`).join('\n');
    writeFileSync(path.join(dir, 'source.ldif'), `${base}\n${users}`);
    // The preview of 1,500 adds is far more than a pipe holds: the reader closes after one chunk.
    for (const args of [['sync', '--preview', '--json'], ['runs', '--json'], ['events', '--json']]) {
      let closed = false;
      const r = await run([...cfg(dir), ...args], dir, (child) => {
        if (closed) return;
        closed = true;
        child.stdout?.destroy();
      });
      assert.notEqual(r.exit, null, 'ended by itself');
      assert.equal(r.exit, 0, `idsync ${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, '', `idsync ${args.join(' ')} printed nothing to stderr`);
    }
  });
});
