/**
 * The command line tells the truth (issue 8, point 5), each through the real CLI in a child
 * process: the version, the one default sync interval, the one exit-code mapping, usage errors for
 * bad choices, read-only commands that create nothing, and where the configuration is found.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { stringify } from 'yaml';
import { killOnExit } from '../helpers/children.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const RUNNER = path.join(ROOT, 'test/helpers/idsync-main.ts');
/** tsx by path: the CLI runs from other folders too (where `--import tsx` would not resolve). */
const TSX = path.join(ROOT, 'node_modules/tsx/dist/loader.mjs');
const PACKAGE_VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `idsync ...` from the sources; IDSYNC_CONFIG unset unless given. */
function idsync(args: string[], o: { cwd?: string; env?: Record<string, string>; input?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...o.env };
    if (!o.env?.IDSYNC_CONFIG) delete env.IDSYNC_CONFIG;
    const child = spawn(process.execPath, ['--import', TSX, RUNNER, ...args], { cwd: o.cwd ?? ROOT, env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.end(o.input ?? '');
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const LDIF = 'dn: uid=ann,ou=people,dc=lab,dc=test\nobjectClass: inetOrgPerson\nentryUUID: 6a1f0c9e-1111-4000-8000-000000000001\nuid: ann\ncn: Ann\nsn: A\n';

/** A folder with idsync.yaml (an LDIF source; a cloud nobody answers at) and its source file. */
function workspace(extra: Record<string, unknown> = {}): { dir: string; config: string; dataDir: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'idsync-truth-'));
  writeFileSync(path.join(dir, 'source.ldif'), LDIF);
  const config = path.join(dir, 'idsync.yaml');
  writeFileSync(
    config,
    stringify({
      dataDir: './data',
      connectors: [{ name: 'hr', type: 'ldif', path: './source.ldif' }],
      cloud: { url: 'http://127.0.0.1:9', auth: { type: 'client_credentials', clientId: 'idsync' }, retries: 0 },
      ...extra,
    }),
  );
  return { dir, config, dataDir: path.join(dir, 'data') };
}

const dirs: string[] = [];
const ws = (extra: Record<string, unknown> = {}) => {
  const w = workspace(extra);
  dirs.push(w.dir);
  return w;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('--version prints package.json\'s version, whatever the environment says', async () => {
  const r = await idsync(['--version'], { env: { npm_package_version: '9.9.9-not-this' } });
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim(), PACKAGE_VERSION);
});

describe('one default sync interval', () => {
  /** Starts `idsync serve`, returns its first line and /status; stops it. */
  async function serveOnce(config: string, args: string[] = []): Promise<{ line: string; intervalMs: number }> {
    const child: ChildProcess = spawn(process.execPath, ['--import', TSX, RUNNER, '-c', config, 'serve', '--port', '0', ...args], { cwd: ROOT });
    killOnExit(child);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.resume();
    const deadline = Date.now() + 60_000;
    while (!/listening on (\S+)/.test(out) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
    const url = /listening on (\S+)/.exec(out)?.[1];
    assert.ok(url, `serve did not start: ${out}`);
    const res = await request(`${url}/status`);
    const status = (await res.body.json()) as { cycle: { intervalMs: number } };
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    return { line: out.split('\n')[0]!, intervalMs: status.cycle.intervalMs };
  }

  test('serve: the configuration\'s sync.interval, else the one default (5m); --interval wins', async () => {
    const plain = await serveOnce(ws().config);
    assert.match(plain.line, /sync cycle every 5m\)/);
    assert.equal(plain.intervalMs, 300_000);
    const seven = ws({ sync: { interval: '7s' } });
    assert.equal((await serveOnce(seven.config)).intervalMs, 7_000);
    assert.equal((await serveOnce(seven.config, ['--interval', '9s'])).intervalMs, 9_000);
  });

  test('service start does not override the configuration file', { skip: existsSync(path.join(ROOT, 'dist/cli/main.js')) ? false : 'needs `npm run build` (service start runs bin/idsync.js)' }, async () => {
    const w = ws({ sync: { interval: '7s' } });
    const started = await idsync(['-c', w.config, 'service', 'start', '--port', '0', '--wait', '60s']);
    try {
      assert.equal(started.code, 0, started.stdout + started.stderr);
      const pid = JSON.parse(readFileSync(path.join(w.dataDir, 'idsync.pid'), 'utf8')) as { intervalMs: number };
      assert.equal(pid.intervalMs, 7_000);
    } finally {
      const stopped = await idsync(['-c', w.config, 'service', 'stop']);
      assert.equal(stopped.code, 0, stopped.stdout + stopped.stderr);
    }
  });

  test('the help texts name the same default', async () => {
    for (const cmd of [['serve'], ['service', 'start']]) {
      const r = await idsync([...cmd, '--help']);
      assert.match(r.stdout.replace(/\s+/g, ' '), /default: sync\.interval in the configuration \(5m\)/, cmd.join(' '));
    }
  });
});

describe('one exit-code mapping', () => {
  test('a malformed LDIF exits 2 (data error) from `sync` and from `sync --object` alike, naming file:line', async () => {
    const w = ws();
    writeFileSync(path.join(w.dir, 'source.ldif'), 'dn: uid=ann,ou=people,dc=lab,dc=test\nthis line has no colon\n');
    const run = await idsync(['-c', w.config, 'sync']);
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.match(run.stdout, /LDIF_PARSE_ERROR.*source\.ldif:2/);
    const one = await idsync(['-c', w.config, 'sync', '--object', 'uid=ann,ou=people,dc=lab,dc=test']);
    assert.equal(one.code, 2, one.stdout + one.stderr);
    assert.match(one.stdout + one.stderr, /LDIF_PARSE_ERROR/);
  });

  test('other commands use the same code for bad input data', async () => {
    const r = await idsync(['hash', 'orgid', '--salt', 'not-hex'], { input: 'x\n' });
    assert.equal(r.code, 2, r.stdout + r.stderr);
  });
});

describe('usage errors', () => {
  test('serve --log-level bogus: exit 2 with the choices', async () => {
    const w = ws();
    for (const cmd of [['serve'], ['service', 'start']]) {
      const r = await idsync(['-c', w.config, ...cmd, '--log-level', 'bogus']);
      assert.equal(r.code, 2, cmd.join(' '));
      assert.match(r.stderr, /bogus.*invalid.*fatal, error, warn, info, debug, trace, silent/s);
    }
    assert.ok(!existsSync(w.dataDir), 'nothing was started or created');
  });
});

describe('read-only commands create nothing', () => {
  test('runs, events, service status and doctor on a fresh configuration', async () => {
    const w = ws();
    for (const args of [['runs'], ['runs', '--json'], ['events'], ['events', '--json'], ['service', 'status'], ['doctor', '--json']]) {
      const r = await idsync(['-c', w.config, ...args]);
      assert.ok(r.code === 0 || r.code === 1, `${args.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`);
      assert.doesNotMatch(r.stderr, /error \[/, args.join(' '));
      const left = existsSync(w.dataDir) ? readdirSync(w.dataDir) : [];
      assert.ok(!left.includes('idsync.db') && !left.includes('secret.key'), `${args.join(' ')} created ${left.join(', ')}`);
    }
    const runs = await idsync(['-c', w.config, 'runs']);
    assert.match(runs.stdout, /no runs yet/);
  });

  test('with a database, they read it (and still write no key)', async () => {
    const w = ws();
    const synced = await idsync(['-c', w.config, 'sync', '--json'], { env: { IDSYNC_SECRET_KEY: Buffer.alloc(32, 7).toString('base64') } });
    assert.ok(existsSync(path.join(w.dataDir, 'idsync.db')), synced.stderr);
    const runs = JSON.parse((await idsync(['-c', w.config, 'runs', '--json'])).stdout) as unknown[];
    assert.equal(runs.length, 1);
    assert.ok(!existsSync(path.join(w.dataDir, 'secret.key')));
  });
});

describe('where the configuration is found', () => {
  const viewFile = async (args: string[], o: { cwd?: string; env?: Record<string, string> } = {}) => {
    const r = await idsync([...args, 'configure', '--task', 'view', '--json'], o);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return (JSON.parse(r.stdout) as { file: string }).file;
  };
  let a: ReturnType<typeof ws>;
  let b: ReturnType<typeof ws>;
  before(() => {
    a = ws();
    b = ws();
  });

  test('--config, then $IDSYNC_CONFIG, then ./idsync.yaml', async () => {
    assert.equal(await viewFile(['-c', a.config], { env: { IDSYNC_CONFIG: b.config } }), a.config);
    assert.equal(await viewFile([], { env: { IDSYNC_CONFIG: b.config }, cwd: a.dir }), b.config);
    assert.equal(await viewFile([], { cwd: a.dir }), a.config);
  });

  test('then /etc/idsync/idsync.yaml (in a private mount namespace, so the host /etc is untouched)', async (t) => {
    // An overlay on /etc inside `unshare -m`: writes land in a tmpfs that vanishes with the namespace.
    const probe = spawnSync('unshare', ['-m', 'true']);
    if (probe.status !== 0) return t.skip('unshare -m is not available here');
    const empty = mkdtempSync(path.join(tmpdir(), 'idsync-truth-empty-'));
    dirs.push(empty);
    const scratch = mkdtempSync(path.join(tmpdir(), 'idsync-truth-etc-'));
    dirs.push(scratch);
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
    delete env.IDSYNC_CONFIG;
    const script = [
      'set -e',
      'mount --make-rprivate /',
      `mount -t tmpfs tmpfs ${scratch}`,
      `mkdir ${scratch}/up ${scratch}/work`,
      `mount -t overlay overlay -o lowerdir=/etc,upperdir=${scratch}/up,workdir=${scratch}/work /etc`,
      'mkdir -p /etc/idsync',
      `cp ${a.config} /etc/idsync/idsync.yaml`,
      `sed -i 's#^dataDir: .*#dataDir: ${a.dataDir}#; s#path: ./source.ldif#path: ${a.dir}/source.ldif#' /etc/idsync/idsync.yaml`,
      `view() { "${process.execPath}" --import "${TSX}" "${RUNNER}" configure --task view --json | tr -d '\\n'; echo; }`,
      `cd ${empty} && view`,
      `cd ${b.dir} && view`,
    ].join('\n');
    const r = spawnSync('unshare', ['-m', 'sh', '-c', script], { env, encoding: 'utf8' });
    if (r.status !== 0 && /overlay|mount/i.test(r.stderr) && !r.stdout) return t.skip(`no overlay mount here: ${r.stderr.trim()}`);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const [fromEtc, fromHere] = r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { file: string }).file);
    assert.equal(fromEtc, '/etc/idsync/idsync.yaml', 'no ./idsync.yaml: the system file');
    assert.equal(fromHere, b.config, './idsync.yaml comes before /etc/idsync/idsync.yaml');
    assert.ok(!existsSync(path.join(scratch, 'up')), 'the overlay is gone with the namespace');
  });

  test('none found: the error names ./idsync.yaml and the places looked in, exit 2', async () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'idsync-truth-none-'));
    dirs.push(empty);
    const r = await idsync(['runs'], { cwd: empty });
    if (existsSync('/etc/idsync/idsync.yaml')) return;
    assert.equal(r.code, 2);
    assert.match(r.stderr, /CONFIG_NOT_FOUND/);
    assert.match(r.stderr, new RegExp(`${path.join(empty, 'idsync.yaml').replace(/[/.]/g, '\\$&')}`));
    assert.match(r.stderr, /\/etc\/idsync\/idsync\.yaml/);
  });
});

describe('the cloud\'s ServiceProviderConfig', () => {
  test('documentationUri points at a page that exists in this repository', async () => {
    const { createCloudServer } = await import('../../src/cloud/server.js');
    const dir = mkdtempSync(path.join(tmpdir(), 'idsync-truth-cloud-'));
    dirs.push(dir);
    const server = await createCloudServer({ dataDir: dir, adminUser: 'admin', adminPassword: 'Admin-password-1', logger: false, env: {}, secretHashParams: { logN: 10, r: 8, p: 1 } });
    try {
      const tokenRes = await request(`${server.url}/oauth2/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'password', username: 'admin', password: 'Admin-password-1' }).toString(),
      });
      const token = ((await tokenRes.body.json()) as { access_token: string }).access_token;
      const res = await request(`${server.url}/scim/v2/ServiceProviderConfig`, { headers: { authorization: `Bearer ${token}` } });
      const spc = (await res.body.json()) as { documentationUri: string };
      const m = /^https:\/\/github\.com\/idsync\/idsync\/blob\/main\/(.+)$/.exec(spc.documentationUri);
      assert.ok(m, spc.documentationUri);
      assert.ok(existsSync(path.join(ROOT, m[1]!)), `${m[1]} does not exist`);
    } finally {
      await server.close();
    }
  });
});
