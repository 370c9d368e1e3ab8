/**
 * `idsync credentials ...`: through a real process for the paths that need no directory (set with
 * --no-validate, list, delete), and in process with injected connector tests for validation.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EXIT } from '../../src/cli/exit-codes.js';
import { credentialMigrations, openCredentialStore } from '../../src/credentials/store.js';
import { openDatabase } from '../../src/store/database.js';
import { commanderRunner } from '../helpers/processes.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// IDSYNC_TEST_FAKE (JSON) replaces the connector tests: {log, secret: {name: error}, test: {name: error}};
// each call is appended to the log file. Without it, the real connectors/registry.ts is used.
const RUNNER = commanderRunner(
  `
const { appendFileSync } = await import('node:fs');
const { registerCredentialsCommands } = await import('./src/cli/commands/credentials.ts');
const { IdsyncError } = await import('./src/core/errors.ts');
const fake = process.env.IDSYNC_TEST_FAKE ? JSON.parse(process.env.IDSYNC_TEST_FAKE) : undefined;
const log = (entry) => appendFileSync(fake.log, JSON.stringify(entry) + '\\n');
const fail = (f, secret) => { throw new IdsyncError(f.code, f.message.replace('$SECRET', secret ?? ''), { hint: f.hint }); };
const deps = fake ? {
  async testConnectorSecret(_loaded, name, secret) { log({ fn: 'testConnectorSecret', name, secret }); if (fake.secret?.[name]) fail(fake.secret[name], secret); },
  async testConnector(_loaded, name, store) { log({ fn: 'testConnector', name }); if (fake.test?.[name]) { store.recordTest(name, false, fake.test[name].code); fail(fake.test[name]); } store.recordTest(name, true); },
} : {};`,
  'registerCredentialsCommands(program, deps)',
);

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A configuration with an LDAP connector, an LDIF connector (no credential) and the cloud. */
function setup(): { dir: string; config: string; dataDir: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'idsync-cli-cred-'));
  dirs.push(dir);
  const config = path.join(dir, 'idsync.yaml');
  writeFileSync(
    config,
    [
      'dataDir: ./data',
      'connectors:',
      '  - name: corp-ldap',
      '    type: ldap',
      '    url: ldap://127.0.0.1:9',
      '    bindDn: cn=sync,dc=example,dc=com',
      '    baseDn: dc=example,dc=com',
      '  - name: hr-file',
      '    type: ldif',
      '    path: ./people.ldif',
      'cloud:',
      '  url: http://127.0.0.1:9',
      '',
    ].join('\n'),
  );
  return { dir, config, dataDir: path.join(dir, 'data') };
}

interface FakeError {
  code: string;
  message: string;
  hint?: string;
}
interface Fake {
  log: string;
  secret?: Record<string, FakeError>;
  test?: Record<string, FakeError>;
}
type LogEntry = { fn: 'testConnectorSecret'; name: string; secret: string } | { fn: 'testConnector'; name: string };

function childEnv(fake?: Fake): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.IDSYNC_SECRET_KEY;
  delete env.IDSYNC_CONFIG;
  delete env.IDSYNC_TEST_FAKE;
  if (fake) env.IDSYNC_TEST_FAKE = JSON.stringify(fake);
  return env;
}

function idsync(args: string[], input = '', fake?: Fake, extraEnv: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', RUNNER, '--', ...args], {
    cwd: repoRoot,
    input,
    encoding: 'utf8',
    env: { ...childEnv(fake), ...extraEnv },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function calls(fake: Fake): LogEntry[] {
  try {
    return readFileSync(fake.log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogEntry);
  } catch {
    return [];
  }
}

function storedSecret(dataDir: string, name: string, env: NodeJS.ProcessEnv = {}): string | undefined {
  const db = openDatabase(path.join(dataDir, 'idsync.db'), credentialMigrations);
  try {
    return openCredentialStore(db, dataDir, env).get(name);
  } finally {
    db.close();
  }
}

describe('idsync credentials (real process)', () => {
  it('set --no-validate reads the secret from stdin, saves it encrypted, and list --json shows it without the secret', () => {
    const { config, dataDir } = setup();
    const secret = 'Cloud-Client-Secret-9931';
    const set = idsync(['-c', config, 'credentials', 'set', 'cloud', '--no-validate'], `${secret}\r\nignored second line\n`);
    assert.equal(set.code, EXIT.OK, set.stderr);
    assert.match(set.stdout, /saved/);
    assert.ok(!set.stdout.includes(secret) && !set.stderr.includes(secret));

    assert.equal(storedSecret(dataDir, 'cloud'), secret, 'first line, \\r stripped');
    assert.equal(statSync(path.join(dataDir, 'secret.key')).mode & 0o777, 0o600);
    const files = readdirSync(dataDir).filter((f) => f.startsWith('idsync.db'));
    for (const f of files) assert.ok(!readFileSync(path.join(dataDir, f)).includes(Buffer.from(secret)), f);

    const list = idsync(['-c', config, 'credentials', 'list', '--json']);
    assert.equal(list.code, EXIT.OK, list.stderr);
    assert.ok(!list.stdout.includes(secret));
    assert.ok(!list.stdout.includes('Cloud-Client'));
    const parsed = JSON.parse(list.stdout) as { credentials: { connector: string; set: boolean; lastTestOk: boolean | null; changedAt: string | null }[] };
    const byName = Object.fromEntries(parsed.credentials.map((c) => [c.connector, c]));
    assert.deepEqual(Object.keys(byName).sort(), ['cloud', 'corp-ldap'], 'the LDIF connector has no credential');
    assert.equal(byName.cloud!.set, true);
    assert.equal(byName.cloud!.lastTestOk, null);
    assert.match(byName.cloud!.changedAt!, /^\d{4}-/);
    assert.equal(byName['corp-ldap']!.set, false);

    const human = idsync(['-c', config, 'credentials', 'list']);
    assert.equal(human.code, EXIT.OK, human.stderr);
    assert.match(human.stdout, /cloud\s+yes/);
    assert.match(human.stdout, /No credential yet for: corp-ldap/);
    assert.ok(!human.stdout.includes(secret));
  });

  it('set replaces a secret; delete removes it', () => {
    const { config, dataDir } = setup();
    assert.equal(idsync(['-c', config, 'credentials', 'set', 'corp-ldap', '--no-validate'], 'one\n').code, EXIT.OK);
    assert.equal(idsync(['-c', config, 'credentials', 'set', 'corp-ldap', '--no-validate'], 'two\n').code, EXIT.OK);
    assert.equal(storedSecret(dataDir, 'corp-ldap'), 'two');
    const del = idsync(['-c', config, 'credentials', 'delete', 'corp-ldap', '--json']);
    assert.equal(del.code, EXIT.OK, del.stderr);
    assert.deepEqual(JSON.parse(del.stdout), { connector: 'corp-ldap', deleted: true });
    assert.equal(storedSecret(dataDir, 'corp-ldap'), undefined);
  });

  it('refuses an unknown connector and an LDIF connector (exit 2), and an empty secret', () => {
    const { config } = setup();
    const unknown = idsync(['-c', config, 'credentials', 'set', 'nope', '--no-validate'], 'x\n');
    assert.equal(unknown.code, EXIT.USAGE);
    assert.match(unknown.stderr, /no connector named "nope"/);
    assert.match(unknown.stderr, /corp-ldap, cloud/);
    const ldif = idsync(['-c', config, 'credentials', 'set', 'hr-file', '--no-validate'], 'x\n');
    assert.equal(ldif.code, EXIT.USAGE);
    assert.match(ldif.stderr, /LDIF/);
    const empty = idsync(['-c', config, 'credentials', 'set', 'cloud', '--no-validate'], '\n');
    assert.equal(empty.code, EXIT.UNAVAILABLE);
    assert.match(empty.stderr, /CREDENTIAL_MISSING/);
  });

  it('a missing configuration file is a usage error naming the fix', () => {
    const r = idsync(['-c', '/nonexistent/idsync.yaml', 'credentials', 'list']);
    assert.equal(r.code, EXIT.USAGE);
    assert.match(r.stderr, /CONFIG_NOT_FOUND/);
  });

  it('without the key the service uses, list and test write no key file, and set refuses instead of making one', () => {
    const { config, dataDir } = setup();
    // The service's key comes from its environment ($IDSYNC_SECRET_KEY), not from a file.
    const serviceKey = randomBytes(32).toString('base64');
    const withKey = { IDSYNC_SECRET_KEY: serviceKey };
    assert.equal(idsync(['-c', config, 'credentials', 'set', 'cloud', '--no-validate'], 'Service-Secret-1\n', undefined, withKey).code, EXIT.OK);
    assert.ok(!existsSync(path.join(dataDir, 'secret.key')));

    // An admin's shell without the variable: reading writes no key (it used to create secret.key) ...
    const list = idsync(['-c', config, 'credentials', 'list']);
    assert.equal(list.code, EXIT.OK, list.stderr);
    idsync(['-c', config, 'credentials', 'test', 'cloud']);
    assert.ok(!existsSync(path.join(dataDir, 'secret.key')), 'no key file written by list or test');
    // ... and a new secret is refused, naming the missing key, instead of being encrypted with a new one.
    const set = idsync(['-c', config, 'credentials', 'set', 'cloud', '--no-validate'], 'Admin-Secret-2\n');
    assert.notEqual(set.code, EXIT.OK);
    assert.match(set.stderr, /SECRET_KEY_INVALID/);
    assert.match(set.stderr, /IDSYNC_SECRET_KEY/);
    assert.ok(!existsSync(path.join(dataDir, 'secret.key')));
    assert.equal(storedSecret(dataDir, 'cloud', withKey), 'Service-Secret-1', 'the service still reads its secret');
  });

  it('a key file readable by others is refused with SECRET_KEY_INVALID and a chmod hint', async () => {
    const { config, dataDir } = setup();
    assert.equal(idsync(['-c', config, 'credentials', 'set', 'cloud', '--no-validate'], 's\n').code, EXIT.OK);
    const { chmodSync } = await import('node:fs');
    chmodSync(path.join(dataDir, 'secret.key'), 0o644);
    const r = idsync(['-c', config, 'credentials', 'list']);
    assert.equal(r.code, EXIT.FAILED);
    assert.match(r.stderr, /SECRET_KEY_INVALID/);
    assert.match(r.stderr, /chmod 600/);
  });
});

describe('idsync credentials (validation and tests, with fake directories)', () => {
  it('set validates the new secret before saving it, then records a passing test', () => {
    const { dir, config, dataDir } = setup();
    const fake: Fake = { log: path.join(dir, 'calls.log') };
    const r = idsync(['-c', config, 'credentials', 'set', 'corp-ldap', '--json'], 'good-secret\n', fake);
    assert.equal(r.code, EXIT.OK, r.stderr);
    assert.deepEqual(calls(fake), [{ fn: 'testConnectorSecret', name: 'corp-ldap', secret: 'good-secret' }]);
    const out = JSON.parse(r.stdout) as { connector: string; saved: boolean; validated: boolean };
    assert.deepEqual([out.connector, out.saved, out.validated], ['corp-ldap', true, true]);
    assert.ok(!r.stdout.includes('good-secret'));
    assert.equal(storedSecret(dataDir, 'corp-ldap'), 'good-secret');
    const list = idsync(['-c', config, 'credentials', 'list', '--json']);
    const rows = (JSON.parse(list.stdout) as { credentials: { connector: string; lastTestOk: boolean | null }[] }).credentials;
    assert.equal(rows.find((c) => c.connector === 'corp-ldap')!.lastTestOk, true);
  });

  it('a short secret found in the reason withholds the reason, never showing where it matched', () => {
    const { dir, config } = setup();
    const fake: Fake = { log: path.join(dir, 'calls.log'), secret: { cloud: { code: 'CLOUD_UNREACHABLE', message: 'cannot reach https://cloud.example.com ($SECRET)' } } };
    const r = idsync(['-c', config, 'credentials', 'set', 'cloud'], 'x\n', fake);
    assert.notEqual(r.code, EXIT.OK);
    assert.match(r.stderr, /withheld/);
    assert.ok(!r.stderr.includes('[redacted]') && !r.stderr.includes('e[') && !r.stderr.includes('example.com'), r.stderr);
  });

  it('the agent token: a short one is refused, and a saved one is not called verified (nothing tested it)', () => {
    const { config, dataDir } = setup();
    const short = idsync(['-c', config, 'credentials', 'set', 'agent'], 'a\n');
    assert.notEqual(short.code, EXIT.OK);
    assert.match(short.stderr, /CREDENTIAL_INVALID[\s\S]*shorter than 24/);
    assert.equal(storedSecret(dataDir, 'agent'), undefined);
    const token = randomBytes(32).toString('base64');
    const set = idsync(['-c', config, 'credentials', 'set', 'agent', '--json'], `${token}\n`);
    assert.equal(set.code, EXIT.OK, set.stderr);
    assert.equal((JSON.parse(set.stdout) as { validated: boolean }).validated, false);
    assert.equal(storedSecret(dataDir, 'agent'), token);
  });

  it('--no-validate does not contact the directory', () => {
    const { dir, config } = setup();
    const fake: Fake = { log: path.join(dir, 'calls.log') };
    assert.equal(idsync(['-c', config, 'credentials', 'set', 'cloud', '--no-validate'], 'x\n', fake).code, EXIT.OK);
    assert.deepEqual(calls(fake), []);
  });

  it('a refused secret is not saved, the working one is kept, exit 3 with the reason and never the secret', () => {
    const { dir, config, dataDir } = setup();
    assert.equal(idsync(['-c', config, 'credentials', 'set', 'corp-ldap', '--no-validate'], 'working\n').code, EXIT.OK);
    const fake: Fake = {
      log: path.join(dir, 'calls.log'),
      secret: { 'corp-ldap': { code: 'LDAP_BIND_FAILED', message: 'invalid credentials ($SECRET)', hint: 'Check the bind DN and the password.' } },
    };
    const r = idsync(['-c', config, 'credentials', 'set', 'corp-ldap'], 'Wrong-Pass-123\n', fake);
    assert.equal(r.code, EXIT.UNAVAILABLE);
    assert.match(r.stderr, /CREDENTIAL_INVALID/);
    assert.match(r.stderr, /invalid credentials/);
    assert.match(r.stderr, /saved credential is kept/);
    assert.match(r.stderr, /Check the bind DN/);
    assert.ok(!r.stderr.includes('Wrong-Pass-123') && !r.stdout.includes('Wrong-Pass-123'));
    assert.equal(storedSecret(dataDir, 'corp-ldap'), 'working');

    const json = idsync(['-c', config, 'credentials', 'set', 'corp-ldap', '--json'], 'Wrong-Pass-456\n', fake);
    assert.equal(json.code, EXIT.UNAVAILABLE);
    const body = JSON.parse(json.stdout) as { error: { code: string; details: { causeCode: string } } };
    assert.equal(body.error.code, 'CREDENTIAL_INVALID');
    assert.equal(body.error.details.causeCode, 'LDAP_BIND_FAILED');
    assert.ok(!json.stdout.includes('Wrong-Pass-456'));
    assert.equal(storedSecret(dataDir, 'corp-ldap'), 'working');
  });

  it("test runs every connector with a credential, reports each, and exits with the first failure's code", () => {
    const { dir, config } = setup();
    for (const n of ['corp-ldap', 'cloud']) assert.equal(idsync(['-c', config, 'credentials', 'set', n, '--no-validate'], 's\n').code, EXIT.OK);
    const fake: Fake = {
      log: path.join(dir, 'calls.log'),
      test: { cloud: { code: 'CLOUD_AUTH_FAILED', message: 'the cloud directory refused the credential', hint: 'Run `idsync credentials set cloud`.' } },
    };
    const r = idsync(['-c', config, 'credentials', 'test', '--json'], '', fake);
    assert.deepEqual(calls(fake).map((c) => c.name), ['corp-ldap', 'cloud']);
    assert.equal(r.code, EXIT.UNAVAILABLE);
    const body = JSON.parse(r.stdout) as { ok: boolean; results: { connector: string; ok: boolean; code?: string; hint?: string }[] };
    assert.equal(body.ok, false);
    assert.deepEqual(body.results.map((x) => [x.connector, x.ok, x.code]), [
      ['corp-ldap', true, undefined],
      ['cloud', false, 'CLOUD_AUTH_FAILED'],
    ]);
    assert.match(body.results[1]!.hint!, /credentials set cloud/);
    const list = JSON.parse(idsync(['-c', config, 'credentials', 'list', '--json']).stdout) as {
      credentials: { connector: string; lastTestOk: boolean | null; lastErrorCode: string | null }[];
    };
    const cloud = list.credentials.find((c) => c.connector === 'cloud')!;
    assert.deepEqual([cloud.lastTestOk, cloud.lastErrorCode], [false, 'CLOUD_AUTH_FAILED']);
  });

  it('test CONNECTOR tests only that one and exits 0 when it passes (human output)', () => {
    const { dir, config } = setup();
    const fake: Fake = { log: path.join(dir, 'calls.log') };
    const r = idsync(['-c', config, 'credentials', 'test', 'cloud'], '', fake);
    assert.equal(r.code, EXIT.OK, r.stderr);
    assert.deepEqual(calls(fake), [{ fn: 'testConnector', name: 'cloud' }]);
    assert.match(r.stdout, /ok\s+cloud/);
  });

  it('test with the real registry: a connector without a credential fails with CREDENTIAL_MISSING', () => {
    const { config } = setup();
    const r = idsync(['-c', config, 'credentials', 'test', 'corp-ldap', '--json']);
    assert.equal(r.code, EXIT.UNAVAILABLE, r.stderr);
    const body = JSON.parse(r.stdout) as { results: { code?: string }[] };
    assert.equal(body.results[0]!.code, 'CREDENTIAL_MISSING');
  });
});
