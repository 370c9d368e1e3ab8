/**
 * `idsync sync` and `idsync runs` as an administrator meets them when something is wrong: the
 * built CLI in a child process, a real slapd and the real cloud directory.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { skipUnless } from '../helpers/integration.js';
import { freePort, startSlapd, type Slapd } from '../helpers/slapd.js';

const root = path.resolve(import.meta.dirname, '../..');
const bin = path.join(root, 'bin/idsync.js');

/** Async on purpose: the cloud directory runs in this process and must keep serving meanwhile. */
function idsync(config: string, args: string[], input?: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, '-c', config, ...args], { env: { ...process.env, IDSYNC_CONFIG: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.end(input ?? '');
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('idsync sync: faults are reported, recorded and recoverable', { skip: skipUnless('slapd') }, () => {
  let slapd: Slapd;
  let cloud: TestCloud;
  let dir: string;
  let config: string;

  const writeConfig = (ldap: Record<string, unknown>) =>
    writeFileSync(
      config,
      stringify({
        dataDir: './data',
        connectors: [{ name: 'hr', type: 'ldap', bindDn: slapd.adminDn, baseDn: slapd.baseDn, timeoutMs: 3000, ...ldap }],
        cloud: { url: cloud.url, auth: { type: 'client_credentials', clientId: cloud.syncClientId }, retries: 1 },
      }),
    );

  before(async () => {
    slapd = await startSlapd({
      tls: true,
      seedLdif: 'dn: uid=ann,ou=people,dc=lab,dc=test\nobjectClass: inetOrgPerson\nuid: ann\ncn: Ann\nsn: A\nmail: ann@lab.test\n',
    });
    cloud = await startTestCloud();
    dir = mkdtempSync(path.join(tmpdir(), 'idsync-cli-sync-'));
    config = path.join(dir, 'idsync.yaml');
    writeConfig({ url: slapd.url });
    assert.equal((await idsync(config, ['credentials', 'set', 'cloud', '--no-validate'], cloud.syncSecret + '\n')).status, 0);
  });

  after(async () => {
    await cloud?.close();
    await slapd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a wrong bind password: exit 3, a message that names the bind DN, a failed run record', async () => {
    assert.equal((await idsync(config, ['credentials', 'set', 'hr', '--no-validate'], 'wrong-password\n')).status, 0);
    const res = await idsync(config, ['sync']);
    assert.equal(res.status, 3, res.stdout + res.stderr);
    assert.match(res.stdout, /failed/);
    assert.match(res.stdout, /LDAP_BIND_FAILED/);
    assert.match(res.stdout, /cn=admin,dc=lab,dc=test/);
    assert.doesNotMatch(res.stdout + res.stderr, /wrong-password/);
    const runs = JSON.parse((await idsync(config, ['runs', '--json'])).stdout) as { status: string; error: { code: string } }[];
    assert.equal(runs[0]!.status, 'failed');
    assert.equal(runs[0]!.error.code, 'LDAP_BIND_FAILED');
  });

  test('a credential refused at `credentials set` is not saved', async () => {
    const res = await idsync(config, ['credentials', 'set', 'hr'], 'still-wrong\n');
    assert.equal(res.status, 3);
    assert.match(res.stderr, /CREDENTIAL_INVALID|refused/);
  });

  test('an unreachable server: exit 3 and a message that says so', async () => {
    writeConfig({ url: `ldap://127.0.0.1:${await freePort()}` });
    assert.equal((await idsync(config, ['credentials', 'set', 'hr', '--no-validate'], `${slapd.adminPassword}\n`)).status, 0);
    const res = await idsync(config, ['sync', '--json']);
    assert.equal(res.status, 3);
    const run = JSON.parse(res.stdout) as { status: string; error: { code: string; message: string } };
    assert.equal(run.status, 'failed');
    assert.equal(run.error.code, 'LDAP_UNREACHABLE');
    assert.match(run.error.message, /connection refused|ECONNREFUSED/i);
  });

  test('a TLS failure (no CA for the server certificate): exit 3, LDAP_TLS_FAILED with the fix', async () => {
    writeConfig({ url: slapd.ldapsUrl });
    const res = await idsync(config, ['sync']);
    assert.equal(res.status, 3, res.stdout + res.stderr);
    assert.match(res.stdout, /LDAP_TLS_FAILED/);
    assert.match(res.stdout, /tls\.ca/);
  });

  test('after the fix the next run finishes the work', async () => {
    writeConfig({ url: slapd.ldapsUrl, tls: { ca: slapd.caFile } });
    const res = await idsync(config, ['sync', '--json']);
    assert.equal(res.status, 0, res.stdout + res.stderr);
    const run = JSON.parse(res.stdout) as { status: string; steps: { step: string; adds: number }[] };
    assert.equal(run.status, 'success');
    assert.equal(run.steps.find((s) => s.step === 'export')!.adds, 1);
  });

  test('an invalid configuration: exit 2 with file, line and key', async () => {
    writeFileSync(config, 'connectors:\n  - name: hr\n    type: ldapp\n    url: ldap://x\ncloud:\n  url: http://127.0.0.1:1\n');
    const res = await idsync(config, ['sync']);
    assert.equal(res.status, 2);
    assert.match(res.stderr, new RegExp(`${config.replace(/[.]/g, '\\.')}:3: connectors\\.0\\.type`));
  });
});
