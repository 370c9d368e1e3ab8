/**
 * What a new administrator meets in `idsync init` (issue 11), through the real CLI against a real
 * slapd (without TLS) and a real cloud directory:
 * - a refused cloud secret names the cloud, the client, and how to create or reset it;
 * - StartTLS against a server without TLS is a TLS failure with its fixes, not a refused credential;
 * - init's default data directory is the interactive wizard's (defaultDataDir);
 * - plain ldap:// without StartTLS, and a plain-HTTP cloud listener off loopback, get a warning.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { defaultDataDir } from '../../src/wizard/operations.js';
import { useSlapdAndCloud } from '../helpers/engine-lab.js';
import { skipUnless } from '../helpers/integration.js';
import { repoRoot, runCli } from '../helpers/run-cli.js';
import { freePort } from '../helpers/slapd.js';

describe('init: errors name the real cause; defaults and warnings (real slapd + cloud)', { skip: skipUnless('slapd') }, () => {
  const lab = useSlapdAndCloud('idsync-first-hour-');

  function initArgs(file: string, extra: string[] = []): string[] {
    return [
      '--config', file, 'init', '--non-interactive',
      '--source-type', 'ldap', '--source-url', lab.slapd.url, '--source-bind-dn', lab.slapd.adminDn, '--source-base-dn', lab.slapd.baseDn,
      '--source-password-env', 'SPW', '--cloud-url', lab.cloud.url, '--cloud-client-id', lab.cloud.syncClientId, '--cloud-secret-env', 'CS',
      ...extra,
    ];
  }

  it('a refused cloud secret: the CLOUD refused client X, and how to create or reset it (not "credentials set cloud")', async () => {
    const file = path.join(lab.tempDir(), 'idsync.yaml');
    const r = await runCli(initArgs(file), { env: { SPW: lab.slapd.adminPassword, CS: 'not-the-secret' } });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, new RegExp(`the cloud directory at ${lab.cloud.url.replace(/[.]/g, '\\.')} refused client "${lab.cloud.syncClientId}": unknown client or wrong secret \\(nothing was saved\\)`));
    assert.match(r.stderr, new RegExp(`idsync cloud admin create-client --url \\S+ --client-id ${lab.cloud.syncClientId} --role sync`));
    assert.match(r.stderr, /delete-client/);
    assert.doesNotMatch(r.stderr, /credentials set cloud/, 'not the fix for a running installation');
    assert.doesNotMatch(r.stderr, /not-the-secret/);
    assert.equal(existsSync(file), false);
  });

  it('StartTLS against a server without TLS is reported as a TLS failure with its three fixes', async () => {
    const file = path.join(lab.tempDir(), 'idsync.yaml');
    const r = await runCli(initArgs(file, ['--source-starttls']), { env: { SPW: lab.slapd.adminPassword, CS: lab.cloud.syncSecret } });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /error \[LDAP_TLS_FAILED\]: TLS to the directory of connector "corp-ldap" failed, so its password was not tried: .*refused StartTLS/);
    assert.match(r.stderr, /ldaps:\/\//);
    assert.match(r.stderr, /private CA, give that CA \(tls\.ca, --source-ca\)/);
    assert.match(r.stderr, /plain LDAP without StartTLS .*unencrypted/);
    assert.doesNotMatch(r.stderr, /credential .* (was )?not accepted/, 'not a refused credential');
    assert.equal(existsSync(file), false);
  });

  it('init without --data-dir picks the wizard\'s default; plain ldap:// gets a warning', async () => {
    const file = path.join(lab.tempDir(), 'idsync.yaml');
    const r = await runCli(initArgs(file), { env: { SPW: lab.slapd.adminPassword, CS: lab.cloud.syncSecret } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(loadConfig(file).config.dataDir, defaultDataDir(file));
    assert.equal(defaultDataDir(file), './idsync-data');
    assert.equal(defaultDataDir('/etc/idsync/idsync.yaml'), '/var/lib/idsync', 'a server configuration in /etc keeps its data in /var/lib');
    assert.match(r.stderr, /warning: connector "corp-ldap" uses plain ldap:\/\/\S+ without StartTLS: the bind password .* unencrypted/);
  });

  it('a plain-HTTP cloud listener on a non-loopback address gets a warning; loopback does not', async () => {
    const listen = async (host: string): Promise<string> => {
      const port = await freePort();
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'test/helpers/idsync-main.ts'), 'cloud', 'serve', '--data', path.join(lab.tempDir(), 'cloud'), '--host', host, '--port', String(port), '--log-level', 'silent'], {
        cwd: repoRoot,
        env: { ...process.env, IDSYNC_CLOUD_ADMIN_PASSWORD: 'First-hour-admin-1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise((r) => child.on('close', r));
      try {
        const deadline = Date.now() + 60_000;
        while (!out.includes('listening on')) {
          assert.equal(child.exitCode, null, `cloud serve exited: ${err}`);
          assert.ok(Date.now() < deadline, `cloud serve did not start: ${out}${err}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        child.kill('SIGTERM');
        await exited;
      }
      return err;
    };
    assert.match(await listen('0.0.0.0'), /warning: the cloud directory listens with plain HTTP on 0\.0\.0\.0/);
    assert.doesNotMatch(await listen('127.0.0.1'), /warning/);
  });
});
