/**
 * The interactive wizard in a real terminal: tmux runs `idsync configure` / `idsync init` (through
 * test/helpers/idsync-main.ts), the test types keys and reads the screen. Real slapd and a real cloud
 * directory (in this process: every child is spawned asynchronously so the cloud keeps answering).
 */
import { strict as assert } from 'node:assert';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createSyncClient } from '../../src/cloud/admin-api-client.js';
import { loadConfig } from '../../src/config/load.js';
import { checkConsolePassword, consoleAccountPath, readConsoleAccount } from '../../src/console/account.js';
import { openContext } from '../../src/engine/context.js';
import { defaultDataDir } from '../../src/wizard/operations.js';
import { findBinary, integrationRequired, skipUnless } from '../helpers/integration.js';
import { useSlapdAndCloud } from '../helpers/engine-lab.js';

const execFileAsync = promisify(execFile);
const CONSOLE_PASSWORD = 'Wizard-console-pass-7!';
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// The real CLI entry point, from the sources (no build needed).
const RUNNER = path.join(repoRoot, 'test/helpers/idsync-main.ts');

/** tmux is not in helpers/integration.ts's list: same rule, written here. */
function tmuxSkip(): string | false {
  if (findBinary('tmux')) return false;
  if (integrationRequired()) throw new Error('IDSYNC_REQUIRE_INTEGRATION=1 but tmux is not installed (apt-get install tmux)');
  return 'tmux not installed';
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** One tmux server on its own socket, so nothing else is touched; killed by close(). */
class Terminal {
  readonly socket = `idsync-wizard-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  async start(args: string[]): Promise<void> {
    const cmd = `cd ${quote(repoRoot)} && ${quote(process.execPath)} --import tsx ${quote(RUNNER)} ${args.map(quote).join(' ')}; echo "[exit=$?]"; sleep 600`;
    await this.tmux('new-session', '-d', '-s', 'w', '-x', '120', '-y', '40', cmd);
  }
  async tmux(...args: string[]): Promise<string> {
    const { stdout } = await execFileAsync('tmux', ['-L', this.socket, ...args]);
    return stdout;
  }
  screen(): Promise<string> {
    return this.tmux('capture-pane', '-p', '-t', 'w', '-S', '-200');
  }
  keys(...keys: string[]): Promise<string> {
    return this.tmux('send-keys', '-t', 'w', ...keys);
  }
  /** Types literal text (no key-name interpretation); `--` so a text starting with "-" (a random secret can) is not read as a flag. */
  type(text: string): Promise<string> {
    return this.tmux('send-keys', '-t', 'w', '-l', '--', text);
  }
  /** Waits until the screen matches, counting matches after `afterCount` earlier ones. */
  async waitFor(re: RegExp, timeoutMs = 20_000, count = 1): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      last = await this.screen();
      const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'g');
      if ((last.match(g) ?? []).length >= count) return last;
      await new Promise((r) => setTimeout(r, 150));
    }
    throw new Error(`timed out waiting for ${re} (x${count}); screen:\n${last}`);
  }
  async close(): Promise<void> {
    await this.tmux('kill-server').catch(() => undefined);
    // kill-server leaves the socket file behind
    rmSync(path.join(process.env.TMUX_TMPDIR ?? '/tmp', `tmux-${process.getuid?.() ?? 0}`, this.socket), { force: true });
  }
}

function runCli(args: string[], env: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', RUNNER, ...args], { cwd: repoRoot, env: { ...process.env, ...env }, stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? -1));
  });
}

function storedSecret(file: string, name: string): string | undefined {
  const ctx = openContext(loadConfig(file));
  try {
    return ctx.credentials.get(name);
  } finally {
    ctx.close();
  }
}

const skip = skipUnless('slapd') || tmuxSkip();

describe('the interactive wizard in a terminal (tmux)', { skip }, () => {
  const lab = useSlapdAndCloud('idsync-wizard-pty-');

  it('configure → "Update cloud credentials": a wrong secret is refused and asked again, the right one is saved', async (t: TestContext) => {
    const dir = lab.tempDir();
    const file = path.join(dir, 'idsync.yaml');
    const code = await runCli(
      ['--config', file, 'init', '--non-interactive', '--source-type', 'ldap', '--source-url', lab.slapd.url, '--source-bind-dn', lab.slapd.adminDn,
        '--source-base-dn', lab.slapd.baseDn, '--source-password-env', 'SPW', '--cloud-url', lab.cloud.url, '--cloud-client-id', lab.cloud.syncClientId, '--cloud-secret-env', 'CS'],
      { SPW: lab.slapd.adminPassword, CS: lab.cloud.syncSecret },
    );
    assert.equal(code, 0);
    // The new secret: the sync client's replacement (a second client, as after a rotation).
    const clientId = 'idsync-rotated';
    const newSecret = await createSyncClient(lab.cloud.url, lab.cloud.admin, clientId);

    const term = new Terminal();
    t.after(() => term.close());
    try {
      await term.start(['--config', file, 'configure']);
      await term.waitFor(/What do you want to do\?/);
      await term.waitFor(/Update cloud credentials/);
      await term.keys('Enter'); // first task
      await term.waitFor(/How does idsync sign in to the cloud directory\?/);
      await term.keys('Enter'); // keep "OAuth client"
      await term.waitFor(/Client id/);
      await term.keys('C-u'); // clear the prefilled id
      await term.type(clientId);
      await term.keys('Enter');
      await term.waitFor(/New client secret \(hidden\)/);
      await term.type('-definitely-wrong'); // a leading "-" (random secrets can have one) must reach the prompt as text
      await term.keys('Enter');
      const refused = await term.waitFor(/What now\?/);
      assert.match(refused, /refused/i);
      assert.ok(!refused.includes('definitely-wrong'), 'the secret is never shown');
      assert.equal(storedSecret(file, 'cloud'), lab.cloud.syncSecret, 'the working secret is kept');
      await term.keys('Enter'); // "Enter the secret again"
      await term.waitFor(/New client secret \(hidden\)/, 20_000, 2);
      await term.type(newSecret);
      await term.keys('Enter');
      const ok = await term.waitFor(/The cloud directory accepted the new credential; it is saved\./);
      assert.ok(!ok.includes(newSecret), 'the secret is never shown');
      assert.match(ok, /no restart is needed/);
      await term.waitFor(/What do you want to do\?/, 20_000, 2);
      await term.keys('Up'); // wraps to "Exit"
      await term.keys('Enter');
      await term.waitFor(/\[exit=0\]/);
    } finally {
      await term.close();
    }
    assert.equal(storedSecret(file, 'cloud'), newSecret);
    assert.deepEqual(loadConfig(file).config.cloud.auth, { type: 'client_credentials', clientId });
  });

  it('init: the whole interactive setup against slapd and the cloud writes the configuration and the store', async (t: TestContext) => {
    const dir = lab.tempDir();
    const file = path.join(dir, 'idsync.yaml');
    const term = new Terminal();
    t.after(() => term.close());
    const answer = async (prompt: RegExp, text: string | null, opts: { clear?: boolean; count?: number } = {}) => {
      await term.waitFor(prompt, 20_000, opts.count ?? 1);
      if (opts.clear) await term.keys('C-u');
      if (text !== null) await term.type(text);
      await term.keys('Enter');
    };
    try {
      await term.start(['--config', file, 'init']);
      await answer(/Where should idsync keep its data/, null); // default ./idsync-data
      await term.waitFor(/Source directory type/);
      await term.keys('Down'); // ldap
      await term.keys('Enter');
      await answer(/Connector name/, 'lab', { clear: true });
      await answer(/Directory URL/, lab.slapd.url);
      await answer(/Bind DN idsync signs in as/, lab.slapd.adminDn);
      await answer(/Base DN to read users and groups from/, lab.slapd.baseDn);
      await term.waitFor(/StartTLS/);
      await term.keys('Left'); // "No": slapd here has no TLS
      await term.keys('Enter');
      await answer(/OUs to include/, `ou=people,${lab.slapd.baseDn}`);
      await answer(/OUs to exclude/, null);
      await answer(/accesslog database/, null); // none: the wizard says deletions then wait for a daily full import
      await answer(/Password of /, 'wrong-one');
      await term.waitFor(/What now\?/);
      await term.keys('Enter'); // try again
      await term.waitFor(/Password of /, 20_000, 2);
      await term.type(lab.slapd.adminPassword);
      await term.keys('Enter');
      await term.waitFor(/The directory accepted the credential\./);
      await answer(/Add another source directory\?/, null); // default No
      await answer(/Cloud directory URL/, lab.cloud.url);
      await answer(/How does idsync sign in to the cloud directory\?/, null);
      await answer(/Client id/, lab.cloud.syncClientId, { clear: true });
      await answer(/Client secret \(hidden\)/, lab.cloud.syncSecret);
      await term.waitFor(/The cloud directory accepted the credential\./);
      // The sync console's sign-in: a mistyped confirmation is asked again; the password never shows.
      await answer(/Set up the sign-in of the sync console/, null); // default Yes
      await answer(/Console user name/, 'operator', { clear: true });
      await answer(/Console password \(hidden, at least 12 characters\)/, CONSOLE_PASSWORD);
      await answer(/The same console password again/, `${CONSOLE_PASSWORD}-typo`);
      await term.waitFor(/The two passwords differ/);
      await answer(/Console password \(hidden, at least 12 characters\)/, CONSOLE_PASSWORD, { count: 2 });
      await answer(/The same console password again/, CONSOLE_PASSWORD, { count: 2 });
      const screen = await term.waitFor(/Deletion threshold|password hash sync/i);
      if (/Turn on password hash sync/.test(screen)) await term.keys('Enter');
      await answer(/Deletion threshold/, '100', { clear: true });
      await answer(/Write .* and save the credentials/, null);
      const done = await term.waitFor(/Setup complete\./);
      assert.match(done, /idsync .*sync/);
      assert.ok(!done.includes(lab.cloud.syncSecret));
      assert.ok(!done.includes(CONSOLE_PASSWORD.slice(0, 10)), 'the console password is never shown');
      assert.match(done.replace(/[\s│]+/g, ''), /Openthewebconsoleathttp:\/\/127\.0\.0\.1:7443\/console\/.*account"operator"/);
      await term.waitFor(/\[exit=0\]/);
    } finally {
      await term.close();
    }
    assert.ok(existsSync(file));
    const text = readFileSync(file, 'utf8');
    assert.ok(!text.includes(lab.cloud.syncSecret));
    const loaded = loadConfig(file);
    assert.equal(loaded.config.connectors[0]!.name, 'lab');
    assert.deepEqual(loaded.config.connectors[0]!.scope.include, [`ou=people,${lab.slapd.baseDn}`]);
    assert.equal(loaded.config.sync.deletionThreshold, 100);
    assert.equal(loaded.config.dataDir, defaultDataDir(file), 'the default data directory is the non-interactive one');
    assert.equal(storedSecret(file, 'lab'), lab.slapd.adminPassword);
    assert.equal(storedSecret(file, 'cloud'), lab.cloud.syncSecret);
    // The console account, as `idsync console set-password` writes it: a hash, never the password.
    assert.equal(readConsoleAccount(loaded.dataDir)?.username, 'operator');
    assert.equal(await checkConsolePassword(loaded.dataDir, 'operator', CONSOLE_PASSWORD), true);
    assert.ok(!readFileSync(consoleAccountPath(loaded.dataDir), 'utf8').includes(CONSOLE_PASSWORD));
  });

  it('init: a StartTLS failure is a TLS failure whose default is "change the settings"; a refused cloud secret names the client and its fix', async (t: TestContext) => {
    const dir = lab.tempDir();
    const file = path.join(dir, 'idsync.yaml');
    const term = new Terminal();
    t.after(() => term.close());
    const answer = async (prompt: RegExp, text: string | null, opts: { clear?: boolean; count?: number } = {}) => {
      await term.waitFor(prompt, 20_000, opts.count ?? 1);
      if (opts.clear) await term.keys('C-u');
      if (text !== null) await term.type(text);
      await term.keys('Enter');
    };
    try {
      await term.start(['--config', file, 'init']);
      await answer(/Where should idsync keep its data/, null);
      await term.waitFor(/Source directory type/);
      await term.keys('Down');
      await term.keys('Enter');
      await answer(/Connector name/, 'lab', { clear: true });
      await answer(/Directory URL/, lab.slapd.url);
      await answer(/Bind DN idsync signs in as/, lab.slapd.adminDn);
      await answer(/Base DN to read users and groups from/, lab.slapd.baseDn);
      await answer(/StartTLS/, null); // default Yes: this slapd has no TLS
      await answer(/PEM file of the CA/, null);
      await answer(/Certificate name to check/, null);
      await answer(/OUs to include/, null);
      await answer(/OUs to exclude/, null);
      await answer(/accesslog database/, null);
      await answer(/Password of /, lab.slapd.adminPassword);
      const failed = await term.waitFor(/What now\?/);
      assert.match(failed, /TLS to the directory failed, so the secret was not tried/);
      assert.match(failed, /ldaps:\/\//);
      assert.doesNotMatch(failed, /refused the credential/);
      await term.keys('Enter'); // the default: back to the connection settings
      await term.waitFor(/Source directory type/, 20_000, 2);
      await term.keys('Enter'); // ldap (kept)
      await answer(/Connector name/, null, { count: 2 });
      await answer(/Directory URL/, null, { count: 2 });
      await answer(/Bind DN idsync signs in as/, null, { count: 2 });
      await answer(/Base DN to read users and groups from/, null, { count: 2 });
      await term.waitFor(/Upgrade the connection with StartTLS\?/, 20_000, 2);
      await term.keys('Left'); // No
      await term.keys('Enter');
      await answer(/OUs to include/, null, { count: 2 });
      await answer(/OUs to exclude/, null, { count: 2 });
      await answer(/accesslog database/, null, { count: 2 });
      await answer(/Password of /, lab.slapd.adminPassword, { count: 2 });
      await term.waitFor(/The directory accepted the credential\./);
      await answer(/Add another source directory\?/, null);
      await answer(/Cloud directory URL/, lab.cloud.url);
      await answer(/How does idsync sign in to the cloud directory\?/, null);
      await answer(/Client id/, lab.cloud.syncClientId, { clear: true });
      await answer(/Client secret \(hidden\)/, 'wrong-secret');
      const refused = await term.waitFor(/What now\?/, 20_000, 2);
      assert.match(refused, /The cloud directory refused the credential/);
      // The screen wraps long lines at 120 columns, also inside words: compare without spaces.
      const flat = refused.replace(/[\s│]+/g, '');
      assert.ok(flat.includes(`refusedclient"${lab.cloud.syncClientId}"`), refused);
      assert.ok(flat.includes(`idsynccloudadmincreate-client--url${lab.cloud.url}--client-id${lab.cloud.syncClientId}--rolesync`), refused);
      assert.doesNotMatch(refused, /credentials set cloud/);
      await term.keys('Enter'); // the default: enter the secret again
      await answer(/Client secret \(hidden\)/, lab.cloud.syncSecret, { count: 2 });
      await term.waitFor(/The cloud directory accepted the credential\./);
      await term.keys('C-c');
      await term.waitFor(/\[exit=/);
    } finally {
      await term.close();
    }
    assert.equal(existsSync(file), false, 'cancelled: nothing written');
  });
});
