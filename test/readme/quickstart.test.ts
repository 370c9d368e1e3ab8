/**
 * The README's quick start, run as written, so that it cannot drift from the tool.
 *
 * The test reads README.md, takes every fenced block that follows a `<!-- quickstart:run -->` or
 * `<!-- quickstart:background -->` marker, and runs it with bash against a real slapd (ldaps://,
 * its own CA) and a real cloud directory started by the README's own `idsync cloud serve` line.
 * The only changes it makes to the text (documented here and in the README's marker):
 *
 * - `idsync` is a shell function running this checkout's CLI from the sources, and the install line
 *   `npm ci && npm link` is skipped (the checkout is installed already);
 * - host, port and paths: `127.0.0.1:8080` / `--port 8080` → a free port, `ldaps://ldap.example.com`
 *   → the test slapd, `/var/lib/` and `/etc/idsync/` → a temp folder (the slapd CA is copied to the
 *   README's `ldap-ca.pem` name there), `dc=example,dc=com` → the test directory's suffix.
 *
 * Environment variables the README tells the reader to set come from the README itself
 * (`export ...`); the bind password its `read` asks for comes on standard input.
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { findBinary, skipUnless } from '../helpers/integration.js';
import { freePort, startSlapd, type Slapd } from '../helpers/slapd.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RUNNER = path.join(repoRoot, 'test/helpers/idsync-main.ts');
const README = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
const INSTALL_LINE = 'npm ci && npm link';

interface Block {
  kind: 'run' | 'background';
  text: string;
}

/** The marked blocks, in README order. */
export function quickstartBlocks(markdown: string): Block[] {
  const out: Block[] = [];
  const re = /<!-- quickstart:(run|background)\b[^>]*-->\s*\n```sh\n([\s\S]*?)\n```/g;
  for (const m of markdown.matchAll(re)) out.push({ kind: m[1] as Block['kind'], text: m[2]! });
  return out;
}

const PASSWORD = 'Quick-start-bind-1';
const skip = skipUnless('slapd') || (findBinary('jq') ? false : 'jq is not installed (the README uses it)');

describe('README quick start, run as written (real slapd over ldaps, real cloud)', { skip }, () => {
  let slapd: Slapd;
  let tmp: string;
  let port: number;
  const background: ChildProcess[] = [];

  before(async () => {
    slapd = await startSlapd({ tls: true });
    await slapd.add(
      [
        `dn: ou=services,${slapd.baseDn}\nobjectClass: organizationalUnit\nou: services\n`,
        `dn: cn=idsync,ou=services,${slapd.baseDn}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: idsync\nuserPassword: ${PASSWORD}\n`,
        ...['ann', 'bob', 'cho'].map((u) => `dn: uid=${u},ou=people,${slapd.baseDn}\nobjectClass: inetOrgPerson\nuid: ${u}\ncn: ${u} Quick\nsn: Quick\nmail: ${u}@lab.test\n`),
        `dn: cn=staff,ou=groups,${slapd.baseDn}\nobjectClass: groupOfNames\ncn: staff\nmember: uid=ann,ou=people,${slapd.baseDn}\nmember: uid=bob,ou=people,${slapd.baseDn}\n`,
      ].join('\n'),
    );
    tmp = mkdtempSync(path.join(tmpdir(), 'idsync-readme-'));
    mkdirSync(path.join(tmp, 'etc'));
    copyFileSync(slapd.caFile!, path.join(tmp, 'etc', 'ldap-ca.pem'));
    port = await freePort();
  });

  after(async () => {
    for (const child of background) if (child.pid && child.exitCode === null) process.kill(-child.pid, 'SIGTERM');
    await slapd?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  function substitute(text: string): string {
    const lines = text.split('\n').filter((l) => l.trim() !== INSTALL_LINE);
    return lines
      .join('\n')
      .replaceAll('127.0.0.1:8080', `127.0.0.1:${port}`)
      .replaceAll('--port 8080', `--port ${port}`)
      .replaceAll('ldaps://ldap.example.com', slapd.ldapsUrl!)
      .replaceAll('/var/lib/', `${tmp}/var/`)
      .replaceAll('/etc/idsync/', `${tmp}/etc/`)
      .replaceAll('dc=example,dc=com', slapd.baseDn);
  }

  function script(block: Block): string {
    const fn = `idsync() { ${JSON.stringify(process.execPath)} --import tsx ${JSON.stringify(RUNNER)} "$@"; }`;
    return `set -eo pipefail\n${fn}\n${substitute(block.text)}\n`;
  }

  function bash(block: Block, stdin: string, detached = false): { child: ChildProcess; done: Promise<{ code: number; stdout: string; stderr: string }> } {
    const child = spawn('bash', ['-c', script(block)], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'], detached, env: { ...process.env, IDSYNC_CLOUD_ADMIN_PASSWORD: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin!.end(stdin);
    const done = new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
    return { child, done };
  }

  it('names every step: the install, the cloud, its sync client, TLS for the source, what to expect', () => {
    const blocks = quickstartBlocks(README);
    assert.ok(blocks.length >= 3, 'the quick start has marked blocks');
    const all = blocks.map((b) => b.text).join('\n');
    assert.ok(all.includes(INSTALL_LINE), 'how to get `idsync` on PATH');
    assert.match(all, /idsync cloud serve /);
    assert.match(all, /idsync cloud admin create-client .*--role sync/);
    assert.match(all, /--source-url ldaps:\/\/\S+ --source-ca /);
    assert.match(README, /\*\*What to expect\.\*\*/);
  });

  it('the marked blocks, run in order, set up a working installation and two cycles', async () => {
    const blocks = quickstartBlocks(README);
    let output = '';
    for (const block of blocks) {
      if (block.kind === 'background') {
        const { child } = bash(block, '', true);
        background.push(child);
        // Wait until the README's cloud answers (it was started by the README's own line).
        const deadline = Date.now() + 60_000;
        for (;;) {
          assert.equal(child.exitCode, null, 'the cloud directory from the README keeps running');
          const ok = await request(`http://127.0.0.1:${port}/healthz`).then((r) => (r.body.dump(), r.statusCode === 200)).catch(() => false);
          if (ok) break;
          assert.ok(Date.now() < deadline, 'the cloud directory from the README answers /healthz');
          await new Promise((r) => setTimeout(r, 200));
        }
        continue;
      }
      const r = await bash(block, `${PASSWORD}\n`).done;
      assert.equal(r.code, 0, `README block failed:\n${block.text}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
      output += r.stdout;
    }
    // What the README says to expect.
    assert.match(output, /Configuration written to /);
    const runs = [...output.matchAll(/^run (\d+) \(cycle\): (\S+)/gm)].map((m) => m[2]);
    assert.deepEqual(runs, ['success', 'success'], output);
    const exportRows = [...output.matchAll(/^cloud\s+export\s+\S+\s+success\s+(\d+)\s+(\d+)\s+(\d+)/gm)].map((m) => Number(m[1]));
    assert.equal(exportRows.length, 2, output);
    assert.equal(exportRows[0], 4, 'the first cycle adds the three users and the group');
    assert.equal(exportRows[1], 0, 'the second cycle exports nothing');
  });
});
