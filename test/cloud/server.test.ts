/** The cloud directory server as a whole: bootstrap, persistence, discovery, errors, logs, audit and the CLI. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { orgIdHash } from '../../src/passwords/hash.js';
import { ADMIN_PASSWORD, accountToken, call, createAccount, createScimUser, fakeClock, sendHashes, start, tempDir, tokenRequest } from './auth/helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('bootstrap of the global administrator', () => {
  const dirs: { cleanup: () => void }[] = [];
  const tmp = () => {
    const t = tempDir();
    dirs.push(t);
    return t.dir;
  };
  after(() => dirs.forEach((d) => d.cleanup()));

  test('a given administrator can sign in; no password is generated', async () => {
    const server = await start(tmp(), { adminUser: 'root-admin', adminPassword: 'given-password-1' });
    try {
      assert.deepEqual(server.bootstrap, { adminUser: 'root-admin' });
      const t = await accountToken(server, 'root-admin', 'given-password-1');
      const accounts = await call(server, 'GET', '/admin/v1/accounts', { token: t });
      assert.equal(accounts.body.accounts[0].role, 'GlobalAdministrator');
    } finally {
      await server.close();
    }
  });

  test('the administrator can come from IDSYNC_CLOUD_ADMIN_USER / IDSYNC_CLOUD_ADMIN_PASSWORD', async () => {
    const server = await start(tmp(), {
      adminUser: undefined,
      adminPassword: undefined,
      env: { IDSYNC_CLOUD_ADMIN_USER: 'env-admin', IDSYNC_CLOUD_ADMIN_PASSWORD: 'env-password-01' },
    });
    try {
      assert.deepEqual(server.bootstrap, { adminUser: 'env-admin' });
      await accountToken(server, 'env-admin', 'env-password-01');
    } finally {
      await server.close();
    }
  });

  test('without a password one is generated, returned once, works, and is stored only as a hash', async () => {
    const dir = tmp();
    const server = await start(dir, { adminPassword: undefined });
    const generated = server.bootstrap.generatedPassword;
    try {
      assert.equal(server.bootstrap.adminUser, 'admin');
      assert.ok(generated && generated.length >= 24);
      await accountToken(server, 'admin', generated);
      const stored = JSON.stringify(server.db!.prepare('SELECT * FROM cloud_accounts').all());
      assert.ok(!stored.includes(generated), 'the password is not in the database');
      assert.match(stored, /scrypt\$/);
    } finally {
      await server.close();
    }
    const again = await start(dir, { adminPassword: undefined });
    try {
      assert.deepEqual(again.bootstrap, { adminUser: 'admin' }, 'a second start generates nothing');
      await accountToken(again, 'admin', generated!);
    } finally {
      await again.close();
    }
  });

  test('a too short given password is refused at start', async () => {
    await assert.rejects(start(tmp(), { adminPassword: 'short' }), (err: Error & { code?: string }) => err.code === 'CONFIG_INVALID');
  });
});

describe('server', () => {
  const tmp = tempDir();
  after(() => tmp.cleanup());

  test('listens on loopback, keeps cloud.db owner-only, answers /healthz and its metadata', async () => {
    const server = await start(tmp.dir);
    try {
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(statSync(path.join(tmp.dir, 'cloud.db')).mode & 0o777, 0o600);
      const health = await call(server, 'GET', '/healthz');
      assert.deepEqual([health.status, health.body], [200, { status: 'ok' }]);
      const meta = await call(server, 'GET', '/.well-known/oauth-authorization-server');
      assert.equal(meta.body.issuer, server.url);
      assert.equal(meta.body.token_endpoint, `${server.url}/oauth2/token`);
      assert.equal(meta.body.jwks_uri, `${server.url}/.well-known/jwks.json`);
    } finally {
      await server.close();
    }
  });

  test('the signing key survives a restart: tokens stay valid, the JWKS is the same', async () => {
    // A fixed public URL (the issuer), as behind a proxy: the port may change between starts.
    const publicUrl = 'https://cloud.example.test';
    const first = await start(tmp.dir, { publicUrl });
    const jwks1 = (await call(first, 'GET', '/.well-known/jwks.json')).body;
    const token = await accountToken(first);
    await first.close();
    const second = await start(tmp.dir, { publicUrl });
    try {
      assert.deepEqual((await call(second, 'GET', '/.well-known/jwks.json')).body, jwks1);
      assert.equal(jwks1.keys.length, 1);
      assert.equal(jwks1.keys[0].alg, 'ES256');
      assert.equal((await call(second, 'GET', '/admin/v1/accounts', { token })).status, 200);
    } finally {
      await second.close();
    }
  });

  test('errors are JSON with a stable code and no stack trace', async () => {
    const server = await start(tmp.dir);
    try {
      const token = await accountToken(server);
      const notFound = await call(server, 'GET', '/nope');
      assert.deepEqual(notFound.body, { error: { code: 'NOT_FOUND', message: 'no such endpoint' } });
      const badJson = await call(server, 'POST', '/admin/v1/accounts', { token, headers: { 'content-type': 'application/json' }, raw: '{"password": "leak-me' });
      assert.equal(badJson.status, 400);
      assert.deepEqual(badJson.body, { error: { code: 'INVALID_JSON', message: 'the request body is not valid JSON' } });
      const media = await call(server, 'POST', '/admin/v1/accounts', { token, headers: { 'content-type': 'application/xml' }, raw: '<x/>' });
      assert.equal(media.status, 415);
      assert.equal(media.body.error.code, 'UNSUPPORTED_MEDIA_TYPE');
      for (const r of [notFound, badJson, media]) assert.ok(!/at .*\.(ts|js):\d+/.test(r.text) && !r.text.includes('stack'));
      const badSince = await call(server, 'GET', '/admin/v1/audit?since=yesterday', { token });
      assert.equal(badSince.body.error.code, 'VALIDATION_FAILED');
    } finally {
      await server.close();
    }
  });

  test('the log is JSON and holds no password, hash, secret or Authorization header', async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const dir = tempDir();
    const server = await start(dir.dir, { logger: { level: 'debug', stream } });
    const secrets = ['Sync-password-77', 'User password 77', ADMIN_PASSWORD, 'leak-me'];
    try {
      const token = await accountToken(server);
      await createAccount(server, token, 'sync77', secrets[0]!);
      await tokenRequest(server, { grant_type: 'password', username: 'sync77', password: 'wrong ' + secrets[0] });
      await createScimUser(server, token, { userName: 'u77@example.com', externalId: 'ext-77' });
      const hash = await orgIdHash(secrets[1]!);
      secrets.push(hash, hash.split(',')[3]!.slice(0, 64), token);
      await sendHashes(server, token, [{ externalId: 'ext-77', hash }]);
      await tokenRequest(server, { grant_type: 'password', username: 'u77@example.com', password: secrets[1]! });
      await call(server, 'POST', '/oauth2/token', { headers: { 'content-type': 'application/json' }, raw: '{"password": "leak-me' });
      await call(server, 'POST', '/admin/v1/accounts', { token, headers: { 'content-type': 'application/json' }, raw: '{"password": "leak-me' });
      const client = await call(server, 'POST', '/admin/v1/clients', { token, json: { clientId: 'c77', role: 'sync' } });
      secrets.push(client.body.clientSecret);
    } finally {
      await server.close();
      dir.cleanup();
    }
    const log = lines.join('');
    assert.ok(lines.length > 5, 'requests were logged');
    for (const line of log.trim().split('\n')) JSON.parse(line);
    assert.match(log, /"url":"\/oauth2\/token"/);
    for (const s of secrets) assert.ok(!log.includes(s), `the log does not contain ${s.slice(0, 4)}…`);
    assert.ok(!/authorization/i.test(log), 'no Authorization header');
  });

  test('admin actions are audited; records older than 30 days are pruned at start', async () => {
    const dir = tempDir();
    const clock = fakeClock(Date.parse('2026-01-01T00:00:00Z'));
    let server = await start(dir.dir, { now: clock.now });
    try {
      const token = await accountToken(server);
      await createAccount(server, token, 'sync88', 'sync88-password');
      await call(server, 'PATCH', '/admin/v1/accounts/sync88', { token, json: { password: 'sync88-password-2' } });
      const admin = await call(server, 'GET', '/admin/v1/audit?type=admin', { token });
      assert.deepEqual(
        admin.body.records.map((r: { reason: string; actor: string; subject: string }) => [r.reason, r.actor, r.subject]),
        [
          ['password_changed', 'admin', 'sync88'],
          ['account_created', 'admin', 'sync88'],
        ],
      );
      assert.ok(!admin.text.includes('sync88-password'));
      const since = await call(server, 'GET', `/admin/v1/audit?since=${encodeURIComponent('2026-01-02T00:00:00Z')}`, { token });
      assert.equal(since.body.records.length, 0, 'since filters by time');
      await server.close();

      clock.advance(31 * 86_400_000);
      server = await start(dir.dir, { now: clock.now });
      const token2 = await accountToken(server, 'admin');
      const all = await call(server, 'GET', '/admin/v1/audit', { token: token2 });
      assert.deepEqual(
        all.body.records.map((r: { reason: string }) => r.reason),
        ['success'],
        'only the sign-in made after the restart is left',
      );
    } finally {
      await server.close();
      dir.cleanup();
    }
  });
});

// ---- the command line, as a child process ----

const CLI = `
import { Command } from 'commander';
import { registerCloudCommands } from ${JSON.stringify(path.join(ROOT, 'src/cli/commands/cloud.ts'))};
import { reportError } from ${JSON.stringify(path.join(ROOT, 'src/cli/output.ts'))};
const program = new Command('idsync').exitOverride();
registerCloudCommands(program);
try { await program.parseAsync(process.argv.slice(1), { from: 'user' }); }
catch (err) { if (err?.code?.startsWith?.('commander.')) process.exitCode = err.exitCode ? 2 : 0; else process.exitCode = reportError(err, process.argv.includes('--json')); }
`;

function cli(args: string[], o: { env?: Record<string, string>; stdin?: string } = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CLI, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...o.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += String(d)));
  child.stderr.on('data', (d) => (stderr += String(d)));
  child.stdin.end(o.stdin ?? '');
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr })),
  );
  return { child, done, output: () => stdout };
}

async function waitFor(check: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('idsync cloud (CLI)', () => {
  const tmp = tempDir();
  after(() => tmp.cleanup());

  test('serve prints the URL and a generated password once; admin commands create an account and change its password', async () => {
    const serve = cli(['cloud', 'serve', '--data', tmp.dir, '--port', '0', '--log-level', 'silent']);
    await waitFor(() => serve.output().includes('Save it now'));
    const out = serve.output();
    const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)![1]!;
    const password = /^ {4}(\S+)$/m.exec(out)![1]!;
    try {
      const adminEnv = { IDSYNC_CLOUD_ADMIN_USER: 'admin', IDSYNC_CLOUD_ADMIN_PASSWORD: password };
      const created = await cli(['cloud', 'admin', 'create-account', '--url', url, '--username', 'sync5', '--role', 'sync', '--json'], {
        env: adminEnv,
        stdin: 'first-sync-password\n',
      }).done;
      assert.equal(created.code, 0, created.stderr);
      assert.deepEqual(
        (({ username, role }) => ({ username, role }))(JSON.parse(created.stdout)),
        { username: 'sync5', role: 'DirectorySynchronizationAccounts' },
      );
      const server = { url };
      const oldToken = await accountToken(server, 'sync5', 'first-sync-password');

      const changed = await cli(['cloud', 'admin', 'set-password', '--url', url, '--username', 'sync5'], { env: adminEnv, stdin: 'second-sync-password\n' }).done;
      assert.equal(changed.code, 0, changed.stderr);
      assert.match(changed.stdout, /password of "sync5" changed/);
      assert.equal((await call(server, 'GET', '/scim/v2/ServiceProviderConfig', { token: oldToken })).status, 401);
      await accountToken(server, 'sync5', 'second-sync-password');

      const wrongAdmin = await cli(['cloud', 'admin', 'list-accounts', '--url', url, '--json'], {
        env: { IDSYNC_CLOUD_ADMIN_PASSWORD: 'not-the-password' },
      }).done;
      assert.equal(wrongAdmin.code, 3, 'CLOUD_AUTH_FAILED exits with 3');
      assert.equal(JSON.parse(wrongAdmin.stdout).error.code, 'CLOUD_AUTH_FAILED');

      const busy = await cli(['cloud', 'serve', '--data', path.join(tmp.dir, 'second'), '--port', new URL(url).port, '--log-level', 'silent'], { env: adminEnv }).done;
      assert.equal(busy.code, 2, 'a port in use is a usage error');
      assert.match(busy.stderr, /cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);

      const noStdin = await cli(['cloud', 'admin', 'set-password', '--url', url, '--username', 'sync5'], { env: adminEnv }).done;
      assert.equal(noStdin.code, 2);
      assert.match(noStdin.stderr, /no password was given on stdin/);
    } finally {
      serve.child.kill('SIGTERM');
      const stopped = await serve.done;
      assert.equal(stopped.code, 0, 'SIGTERM stops the server cleanly');
    }
    // Second start: nothing generated, nothing printed about a password.
    const again = cli(['cloud', 'serve', '--data', tmp.dir, '--port', '0', '--log-level', 'silent', '--json']);
    await waitFor(() => again.output().includes('}'));
    const summary = JSON.parse(again.output());
    assert.equal(summary.adminUser, 'admin');
    assert.equal(summary.generatedPassword, undefined);
    again.child.kill('SIGINT');
    assert.equal((await again.done).code, 0);
  });

  test('--help explains the commands', async () => {
    const help = await cli(['cloud', 'admin', 'set-password', '--help']).done;
    assert.match(help.stdout, /read from stdin/);
    assert.match(help.stdout, /--username <name>/);
    const serveHelp = await cli(['cloud', 'serve', '--help']).done;
    assert.match(serveHelp.stdout, /generated and printed once/);
  });
});
