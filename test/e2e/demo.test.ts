/**
 * `idsync demo`, the README's first command, run as a user runs it: the built CLI in a child
 * process. It must finish its cycle, leave a cloud directory that answers SCIM queries with the
 * printed token, and a second `idsync sync` against it must export nothing.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { request } from 'undici';
import { assertNoTestSecrets } from '../helpers/secret-scan.js';

const root = path.resolve(import.meta.dirname, '../..');
const bin = path.join(root, 'bin/idsync.js');
const work = mkdtempSync(path.join(tmpdir(), 'idsync-demo-test-'));
const dir = path.join(work, 'demo');

after(() => rmSync(work, { recursive: true, force: true }));

test('idsync demo syncs the sample directory and serves the cloud directory until stopped', async () => {
  const child = spawn(process.execPath, [bin, 'demo', '--dir', dir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 60_000;
    while (!out.includes('press Ctrl-C')) {
      assert.ok(Date.now() < deadline, `demo did not finish within a minute:\n${out}\n${err}`);
      assert.equal(child.exitCode, null, `demo exited early:\n${out}\n${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(out, /run 1 \(cycle\): success/);
    assert.match(out, /cloud\s+export\s+export\s+success\s+311\s+0\s+0/);
    const url = /Cloud directory:\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(out)![1]!;
    const token = readFileSync(path.join(dir, 'access-token'), 'utf8');

    // the curl example from the output, as HTTP requests
    const users = await request(`${url}/scim/v2/Users?filter=${encodeURIComponent('title eq "SRE"')}&attributes=userName,displayName`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(users.statusCode, 200);
    const body = (await users.body.json()) as { totalResults: number; Resources: { userName: string; title?: string }[] };
    assert.ok(body.totalResults > 0);
    for (const u of body.Resources) {
      assert.match(u.userName, /@contoso\.example$/);
      assert.equal(u.title, undefined, 'attributes= limits what is returned');
    }
    const groups = await request(`${url}/scim/v2/Groups?filter=${encodeURIComponent('displayName eq "All Staff"')}`, { headers: { authorization: `Bearer ${token}` } });
    const allStaff = ((await groups.body.json()) as { Resources: { members: { type: string }[] }[] }).Resources[0]!;
    assert.equal(allStaff.members.length, 5);
    assert.ok(allStaff.members.every((m) => m.type === 'Group'), 'All Staff holds the department groups (nested)');

    // The progress lines end on the summary's counts (the last export line used to lag: 200 vs 311).
    const lastExport = [...err.matchAll(/^export cloud: (\d+) objects written$/gm)].at(-1);
    assert.equal(lastExport?.[1], '311', `the last export progress line matches the summary:\n${err}`);
    const lastImport = [...err.matchAll(/^import \S+: (\d+) objects read$/gm)].at(-1);
    assert.equal(lastImport?.[1], '311', `the last import progress line matches the summary:\n${err}`);

    // a second cycle against the running demo cloud exports nothing: the printed hint, run as
    // written from the checkout (no `npm link`: after `npm ci` only npx finds the command)
    const hint = /^\s+(npx idsync -c \S+ sync)\b/m.exec(out)?.[1];
    assert.ok(hint, `the demo prints a command for another cycle:\n${out}`);
    // ignore-scripts: the first `npx` of the checkout installs it into npx's cache, which would run
    // `prepare` (a rebuild of dist/) under the tests of the other lane that are running dist/ now.
    const again = spawnSync('sh', ['-c', `${hint} --json`], { encoding: 'utf8', cwd: root, env: { ...process.env, npm_config_offline: 'true', npm_config_ignore_scripts: 'true' } });
    assert.equal(again.status, 0, again.stderr);
    const run = JSON.parse(again.stdout) as { status: string; steps: { step: string; adds: number; updates: number; deletes: number }[] };
    const exp = run.steps.find((s) => s.step === 'export')!;
    assert.deepEqual([run.status, exp.adds, exp.updates, exp.deletes], ['success', 0, 0, 0]);

    // The access token is handed over in its file (mode 0600) and nowhere else: not in the output,
    // not in the cloud's or the sync's data. (The admin password and client secret the demo
    // generates never leave it, so the test cannot search for them.)
    const scanned = await assertNoTestSecrets(
      { tokens: { 'access token': token } },
      {
        dirs: [dir],
        texts: [
          { what: 'idsync demo', text: out + err },
          { what: 'idsync sync --json', text: again.stdout + again.stderr },
        ],
        exclude: [{ file: path.join(dir, 'access-token'), why: 'the demo hands the token over in this file' }],
      },
    );
    assert.ok(scanned.files >= 3, `scanned ${scanned.files} files`);
  } finally {
    child.kill('SIGINT');
  }
  assert.equal(await exited, 0);
});

test('idsync demo refuses to wipe a folder it did not create', () => {
  const res = spawnSync(process.execPath, [bin, 'demo', '--dir', root, '--no-serve'], { encoding: 'utf8' });
  assert.equal(res.status, 2);
  assert.match(res.stderr, /was not made by `idsync demo`/);
});
