/**
 * `idsync init --non-interactive` and `idsync configure --task ...` against real servers: OpenLDAP
 * (slapd) and the cloud directory (in this process). The CLI runs as a child process, spawned
 * asynchronously so that the in-process cloud keeps answering.
 */
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { createSyncClient } from '../../src/cloud/admin-api-client.js';
import { checkConsolePassword, consoleAccountPath, readConsoleAccount } from '../../src/console/account.js';
import { loadConfig } from '../../src/config/load.js';
import { openContext } from '../../src/engine/context.js';
import { passwordHashSyncSupported } from '../../src/wizard/config-file.js';
import { skipUnless } from '../helpers/integration.js';
import { useSlapdAndCloud } from '../helpers/engine-lab.js';
import { runCli as run } from '../helpers/run-cli.js';

function storeOf(file: string): { secrets: Record<string, string | undefined>; events: { name: string; details: Record<string, unknown>; message: string }[] } {
  const ctx = openContext(loadConfig(file));
  try {
    const secrets: Record<string, string | undefined> = {};
    for (const c of ctx.credentials.list()) secrets[c.name] = ctx.credentials.get(c.name);
    const events = ctx.events.query({ limit: 100 }).map((e) => ({ name: e.name, details: e.details, message: e.message }));
    return { secrets, events };
  } finally {
    ctx.close();
  }
}

const skip = skipUnless('slapd');

describe('idsync init / configure (non-interactive, real slapd + cloud)', { skip }, () => {
  const lab = useSlapdAndCloud('idsync-wizard-');
  const tempDir = lab.tempDir;
  const SOURCE_PW = 'IDSYNC_TEST_SOURCE_PW';
  const CLOUD_SECRET = 'IDSYNC_TEST_CLOUD_SECRET';


  function initArgs(file: string, extra: string[] = []): string[] {
    return [
      '--config', file, 'init', '--non-interactive',
      '--source-type', 'ldap', '--source-name', 'corp-ldap', '--source-url', lab.slapd.url,
      '--source-bind-dn', lab.slapd.adminDn, '--source-base-dn', lab.slapd.baseDn, '--source-password-env', SOURCE_PW,
      '--source-include', `ou=people,${lab.slapd.baseDn}`,
      '--cloud-url', lab.cloud.url, '--cloud-client-id', lab.cloud.syncClientId, '--cloud-secret-env', CLOUD_SECRET,
      '--phs', 'off', '--deletion-threshold', '50',
      ...extra,
    ];
  }
  const goodEnv = () => ({ [SOURCE_PW]: lab.slapd.adminPassword, [CLOUD_SECRET]: lab.cloud.syncSecret });

  /** A fresh installation made by `idsync init`. */
  async function installed(): Promise<string> {
    const file = path.join(tempDir(), 'idsync.yaml');
    const r = await run(initArgs(file), { env: goodEnv() });
    assert.equal(r.code, 0, r.stderr);
    return file;
  }

  it('init writes a valid configuration with no secret in it and saves both secrets in the store', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'idsync.yaml');
    const r = await run([...initArgs(file), '--json'], { env: goodEnv() });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(out.credentialsSaved, ['corp-ldap', 'cloud']);
    assert.ok(!r.stdout.includes(lab.slapd.adminPassword) && !r.stdout.includes(lab.cloud.syncSecret), 'no secret in the output');

    const text = readFileSync(file, 'utf8');
    assert.match(text, /^# idsync configuration, written by `idsync init`/);
    assert.ok(!text.includes(lab.cloud.syncSecret), 'the cloud secret is not in the YAML');
    assert.ok(!text.includes(`: ${lab.slapd.adminPassword}\n`) && !/password:/i.test(text), 'no bind password in the YAML');
    const loaded = loadConfig(file);
    const c = loaded.config.connectors[0]!;
    assert.equal(c.type, 'ldap');
    assert.equal(c.name, 'corp-ldap');
    assert.deepEqual(c.scope.include, [`ou=people,${lab.slapd.baseDn}`]);
    assert.deepEqual(loaded.config.cloud.auth, { type: 'client_credentials', clientId: lab.cloud.syncClientId });
    assert.equal(loaded.config.sync.deletionThreshold, 50);
    if (passwordHashSyncSupported()) assert.match(text, /passwordHashSync:\n\s+enabled: false/);

    const { secrets, events } = storeOf(file);
    assert.equal(secrets['corp-ldap'], lab.slapd.adminPassword);
    assert.equal(secrets.cloud, lab.cloud.syncSecret);
    assert.deepEqual(events.filter((e) => e.name === 'CREDENTIAL_CHANGED').map((e) => e.details.connector).sort(), ['cloud', 'corp-ldap']);
  });

  it('init --console-password-env sets up the web console account (only its hash stored); too short a password writes nothing', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'idsync.yaml');
    const consolePassword = 'Init-console-pass-1!';
    const short = await run(initArgs(file, ['--console-user', 'ops', '--console-password-env', 'IDSYNC_TEST_CONSOLE_PW']), { env: { ...goodEnv(), IDSYNC_TEST_CONSOLE_PW: 'short-1!' } });
    assert.equal(short.code, 2, short.stderr);
    assert.match(short.stderr, /too short/);
    assert.equal(existsSync(file), false, 'nothing written');
    const r = await run([...initArgs(file, ['--console-user', 'ops', '--console-password-env', 'IDSYNC_TEST_CONSOLE_PW']), '--json'], { env: { ...goodEnv(), IDSYNC_TEST_CONSOLE_PW: consolePassword } });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes(consolePassword), 'no password in the output');
    assert.ok(JSON.parse(r.stdout).nextSteps.some((x: string) => /web console .*account "ops"/.test(x)));
    const loaded = loadConfig(file);
    const account = readConsoleAccount(loaded.dataDir);
    assert.equal(account?.username, 'ops');
    assert.ok(!readFileSync(consoleAccountPath(loaded.dataDir), 'utf8').includes(consolePassword), 'only a hash is stored');
    assert.equal(await checkConsolePassword(loaded.dataDir, 'ops', consolePassword), true);
  });

  it('init with a wrong source password exits 3 with the directory\'s reason and writes nothing', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'idsync.yaml');
    const r = await run(initArgs(file), { env: { ...goodEnv(), [SOURCE_PW]: 'not-the-password' } });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /CREDENTIAL_INVALID/);
    assert.match(r.stderr, /corp-ldap/);
    assert.match(r.stderr, /nothing was saved/);
    assert.ok(!r.stderr.includes('not-the-password'));
    assert.equal(existsSync(file), false, 'no configuration file');
    assert.equal(existsSync(path.join(dir, 'idsync-data')), false, 'no data directory');
  });

  it('init with a wrong cloud secret exits 3 and writes nothing', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'idsync.yaml');
    const r = await run(initArgs(file), { env: { ...goodEnv(), [CLOUD_SECRET]: 'wrong-cloud-secret' } });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /the cloud directory at \S+ refused client "/);
    assert.equal(existsSync(file), false);
    assert.equal(existsSync(path.join(dir, 'idsync-data')), false);
  });

  it('init refuses to overwrite an existing file without --force (exit 2), and replaces it with --force', async () => {
    const file = await installed();
    const before = readFileSync(file, 'utf8');
    const r = await run(initArgs(file), { env: goodEnv() });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /already exists/);
    assert.match(r.stderr, /--force/);
    assert.equal(readFileSync(file, 'utf8'), before);
    const forced = await run(initArgs(file, ['--force', '--deletion-threshold', '10%']), { env: goodEnv() });
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(loadConfig(file).config.sync.deletionThreshold, '10%');
  });

  it('init and configure refuse to prompt when stdin is not a terminal (exit 2, says how to automate)', async () => {
    const file = path.join(tempDir(), 'idsync.yaml');
    const i = await run(['--config', file, 'init']);
    assert.equal(i.code, 2);
    assert.match(i.stderr, /--non-interactive/);
    const installedFile = await installed();
    const c = await run(['--config', installedFile, 'configure']);
    assert.equal(c.code, 2);
    assert.match(c.stderr, /--task/);
  });

  it('init with a missing flag or secret variable is a usage error (exit 2) naming it', async () => {
    const file = path.join(tempDir(), 'idsync.yaml');
    const r = await run(initArgs(file), { env: { [CLOUD_SECRET]: lab.cloud.syncSecret, [SOURCE_PW]: '' } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(SOURCE_PW));
    const r2 = await run(['--config', file, 'init', '--non-interactive', '--source-type', 'ldap'], { env: goodEnv() });
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /--source-url, --source-bind-dn, --source-base-dn/);
    assert.equal(existsSync(file), false);
  });

  it('configure update-cloud-credentials saves a new client\'s secret (validated live) and switches the client id', async () => {
    const file = await installed();
    const id = `idsync-r2-${Date.now()}`;
    const secret = await createSyncClient(lab.cloud.url, lab.cloud.admin, id);
    const r = await run(['--config', file, 'configure', '--task', 'update-cloud-credentials', '--cloud-client-id', id, '--password-stdin', '--json'], {
      stdin: `${secret}\n`,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes(secret));
    assert.equal(JSON.parse(r.stdout).credentialSaved, 'cloud');
    assert.deepEqual(loadConfig(file).config.cloud.auth, { type: 'client_credentials', clientId: id });
    const { secrets, events } = storeOf(file);
    assert.equal(secrets.cloud, secret);
    assert.equal(events.filter((e) => e.name === 'CREDENTIAL_CHANGED' && e.details.connector === 'cloud').length, 2);
  });

  it('configure update-cloud-credentials with a wrong secret exits 3, keeps the working one and logs CREDENTIAL_REFUSED', async () => {
    const file = await installed();
    const yamlBefore = readFileSync(file, 'utf8');
    const r = await run(['--config', file, 'configure', '--task', 'update-cloud-credentials', '--password-stdin'], { stdin: 'wrong-secret-123\n' });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /the saved credential is kept/);
    assert.ok(!r.stderr.includes('wrong-secret-123'));
    const { secrets, events } = storeOf(file);
    assert.equal(secrets.cloud, lab.cloud.syncSecret, 'the working secret is kept');
    const refused = events.filter((e) => e.name === 'CREDENTIAL_REFUSED');
    assert.equal(refused.length, 1);
    assert.equal(refused[0]!.details.connector, 'cloud');
    assert.ok(!JSON.stringify(refused[0]).includes('wrong-secret-123'));
    assert.equal(readFileSync(file, 'utf8'), yamlBefore, 'the YAML is unchanged');
  });

  it('configure update-source-credentials: a wrong password is refused (exit 3, kept); the right one is saved', async () => {
    const file = await installed();
    const bad = await run(['--config', file, 'configure', '--task', 'update-source-credentials', '--connector', 'corp-ldap', '--password-env', 'PW'], {
      env: { PW: 'bad-bind-pw' },
    });
    assert.equal(bad.code, 3, bad.stderr);
    assert.equal(storeOf(file).secrets['corp-ldap'], lab.slapd.adminPassword);
    const unknown = await run(['--config', file, 'configure', '--task', 'update-source-credentials', '--connector', 'nope', '--password-env', 'PW'], {
      env: { PW: 'x' },
    });
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /corp-ldap/);
    const good = await run(['--config', file, 'configure', '--task', 'update-source-credentials', '--connector', 'corp-ldap', '--password-stdin'], {
      stdin: `${lab.slapd.adminPassword}\n`,
    });
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /no restart is needed/);
    const { events } = storeOf(file);
    assert.equal(events.filter((e) => e.name === 'CREDENTIAL_CHANGED' && e.details.connector === 'corp-ldap').length, 2);
  });

  it('configure scope replaces include/exclude in the YAML (comments kept) and refuses a DN outside the base', async () => {
    const file = await installed();
    const r = await run(['--config', file, 'configure', '--task', 'scope', '--connector', 'corp-ldap', '--clear-include', '--exclude', `ou=groups,${lab.slapd.baseDn}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /restart/);
    const text = readFileSync(file, 'utf8');
    assert.match(text, /^# idsync configuration/, 'the header comment is kept');
    const c = loadConfig(file).config.connectors[0]!;
    assert.deepEqual(c.scope.include, []);
    assert.deepEqual(c.scope.exclude, [`ou=groups,${lab.slapd.baseDn}`]);
    const bad = await run(['--config', file, 'configure', '--task', 'scope', '--connector', 'corp-ldap', '--include', 'ou=x,dc=elsewhere,dc=com']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /not under the base DN/);
    assert.equal(readFileSync(file, 'utf8'), text, 'nothing written on refusal');
  });

  it('configure password-hash-sync --enable/--disable updates the YAML (or says the schema lacks the key)', async () => {
    const file = await installed();
    const on = await run(['--config', file, 'configure', '--task', 'password-hash-sync', '--enable', '--json']);
    if (!passwordHashSyncSupported()) {
      assert.equal(on.code, 2);
      assert.match(on.stdout, /no passwordHashSync setting/);
      return;
    }
    assert.equal(on.code, 0, on.stderr);
    assert.equal(JSON.parse(on.stdout).enabled, true);
    assert.match(readFileSync(file, 'utf8'), /passwordHashSync:\n\s+enabled: true/);
    const off = await run(['--config', file, 'configure', '--task', 'password-hash-sync', '--disable']);
    assert.equal(off.code, 0, off.stderr);
    assert.match(readFileSync(file, 'utf8'), /passwordHashSync:\n\s+enabled: false/);
    loadConfig(file);
  });

  it('configure add-source validates the new directory live and appends it; view --json shows no secret', async () => {
    const file = await installed();
    const bad = await run(
      ['--config', file, 'configure', '--task', 'add-source', '--source-type', 'ldap', '--source-name', 'second', '--source-url', lab.slapd.url,
        '--source-bind-dn', lab.slapd.adminDn, '--source-base-dn', lab.slapd.baseDn, '--password-stdin'],
      { stdin: 'wrong\n' },
    );
    assert.equal(bad.code, 3, bad.stderr);
    assert.equal(loadConfig(file).config.connectors.length, 1, 'not added');
    const good = await run(
      ['--config', file, 'configure', '--task', 'add-source', '--source-type', 'ldap', '--source-name', 'second', '--source-url', lab.slapd.url,
        '--source-bind-dn', lab.slapd.adminDn, '--source-base-dn', lab.slapd.baseDn, '--password-stdin'],
      { stdin: `${lab.slapd.adminPassword}\n` },
    );
    assert.equal(good.code, 0, good.stderr);
    assert.deepEqual(loadConfig(file).config.connectors.map((c) => c.name), ['corp-ldap', 'second']);
    assert.equal(storeOf(file).secrets.second, lab.slapd.adminPassword);
    const view = await run(['--config', file, 'configure', '--task', 'view', '--json']);
    assert.equal(view.code, 0, view.stderr);
    const v = JSON.parse(view.stdout);
    assert.deepEqual(v.credentials.map((c: { name: string }) => c.name).sort(), ['cloud', 'corp-ldap', 'second']);
    assert.ok(!view.stdout.includes(lab.slapd.adminPassword) && !view.stdout.includes(lab.cloud.syncSecret), 'no secret in view');
  });
});
