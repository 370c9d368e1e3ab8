/**
 * `idsync cloud ...`: run the cloud directory and administer it.
 *
 *   idsync cloud serve [--data DIR | --database postgres://…] [--host H] [--port P] [--admin-user U] [--public-url URL]
 *   idsync cloud admin create-account --username U --role sync     (password on stdin)
 *   idsync cloud admin set-password   --username U                 (password on stdin)
 *   idsync cloud admin list-accounts | delete-account | create-client | delete-client | audit
 *   idsync cloud credentials set database | delete database | list   (the PostgreSQL password, sealed; value on stdin)
 *
 * Admin commands sign in with IDSYNC_CLOUD_ADMIN_USER (default "admin") and
 * IDSYNC_CLOUD_ADMIN_PASSWORD. Passwords never come from argv (other users see it in `ps`).
 */
import { Command, Option } from 'commander';
import { request } from 'undici';
import { IdsyncError } from '../../core/errors.js';
import { createCloudServer } from '../../cloud/server.js';
import { CLOUD_CREDENTIALS, deleteCloudCredential, isCloudCredential, listCloudCredentials, setCloudCredential, type CloudCredential } from '../../cloud/store/credentials.js';
import { plainHttpWarning } from '../../service/systemd.js';
import { printJson, println, table } from '../output.js';
import { StopSignals } from '../signals.js';
import type { RegisterCommand } from '../context.js';

const DEFAULT_PORT = 8080;
const DEFAULT_DATA_DIR = './idsync-cloud-data';
const DEFAULT_URL = `http://127.0.0.1:${DEFAULT_PORT}`;

interface ServeOptions {
  data: string;
  database?: string;
  databaseTls?: 'disable' | 'require' | 'verify-full';
  databaseCa?: string;
  databaseServerName?: string;
  host: string;
  port: string;
  adminUser?: string;
  publicUrl?: string;
  trustProxy?: boolean;
  logLevel: string;
  json?: boolean;
}

async function serve(opts: ServeOptions): Promise<void> {
  const port = Number(opts.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new IdsyncError('CONFIG_INVALID', `--port must be a port number (0-65535), got "${opts.port}"`, { hint: 'Use 0 for a free port.' });
  }
  if (opts.database !== undefined && !/^postgres(ql)?:\/\//.test(opts.database)) {
    throw new IdsyncError('CONFIG_INVALID', '--database must be a postgres:// URL', { hint: 'Give --database postgres://USER@HOST:PORT/DATABASE, the password in $IDSYNC_CLOUD_DATABASE_PASSWORD.' });
  }
  if ((opts.databaseCa !== undefined || opts.databaseServerName !== undefined) && opts.databaseTls !== 'verify-full') {
    throw new IdsyncError('CONFIG_INVALID', '--database-ca and --database-server-name need --database-tls verify-full', { hint: 'Add --database-tls verify-full (the certificate is checked only then).' });
  }
  // The password from the environment (a systemd credential or EnvironmentFile), else the sealed
  // `database` credential of the data directory (read when connecting); never from argv.
  const databasePassword = process.env.IDSYNC_CLOUD_DATABASE_PASSWORD;
  const server = await createCloudServer({
    dataDir: opts.data,
    ...(opts.database ? { database: opts.database } : {}),
    ...(opts.database && databasePassword ? { databasePassword } : {}),
    ...(opts.database && opts.databaseTls
      ? {
          databaseTls: {
            mode: opts.databaseTls,
            ...(opts.databaseCa !== undefined ? { caFile: opts.databaseCa } : {}),
            ...(opts.databaseServerName !== undefined ? { serverName: opts.databaseServerName } : {}),
          },
        }
      : {}),
    host: opts.host,
    port,
    adminUser: opts.adminUser,
    publicUrl: opts.publicUrl,
    trustProxy: opts.trustProxy ?? false,
    // JSON logs go to stderr, so stdout carries only what this command prints.
    logger: opts.logLevel === 'silent' ? false : { level: opts.logLevel, stream: process.stderr },
  }).catch((err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new IdsyncError('CONFIG_INVALID', `cannot listen on ${opts.host}:${port}: ${code}`, {
        hint: code === 'EADDRINUSE' ? 'Another process uses that port: choose another with --port.' : 'Check --host and --port (ports below 1024 need privileges).',
        cause: err,
      });
    }
    throw err;
  });
  // Before it says where it listens (signals.ts); during start-up a signal still ends the process.
  const signals = new StopSignals();
  try {
    announce(opts, server);
    await signals.first;
  } finally {
    // A second signal while the server closes ends the process, as before.
    signals.dispose();
    await server.close().catch((err: unknown) => {
      process.stderr.write(`error while stopping: ${(err as Error).message}\n`);
    });
  }
}

/** Where the cloud directory listens (and, at the first start, the generated administrator password). */
function announce(opts: ServeOptions, server: Awaited<ReturnType<typeof createCloudServer>>): void {
  const { adminUser, generatedPassword } = server.bootstrap;
  const plainHttp = plainHttpWarning(opts.host, 'the cloud directory');
  if (plainHttp && !opts.publicUrl?.startsWith('https://')) process.stderr.write(`warning: ${plainHttp}\n`);
  if (opts.json) {
    printJson({ url: server.url, dataDir: opts.data, store: server.store.dialect, adminUser, ...(generatedPassword ? { generatedPassword } : {}) });
  } else {
    println(`idsync cloud directory listening on ${server.url}`);
    println(`  data:   ${server.store.dialect === 'postgres' ? server.store.location : opts.data}`);
    println(`  SCIM:   ${server.url}/scim/v2`);
    println(`  tokens: ${server.url}/oauth2/token`);
    if (generatedPassword) {
      println('');
      println(`A global administrator "${adminUser}" was created with this generated password:`);
      println('');
      println(`    ${generatedPassword}`);
      println('');
      println('Save it now: it is shown only this once and stored only as a hash.');
      println('(Set IDSYNC_CLOUD_ADMIN_PASSWORD before the first start to choose it yourself.)');
    }
  }
}

// ---- admin client ----

interface AdminOptions {
  url: string;
  json?: boolean;
}

/** Reads one secret line from stdin: hidden on a terminal, the first line of a pipe otherwise. */
export async function readSecretFromStdin(prompt: string, stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  let value: string;
  if (stdin.isTTY) {
    process.stderr.write(prompt);
    value = await new Promise<string>((resolve, reject) => {
      let buf = '';
      stdin.setRawMode(true);
      stdin.setEncoding('utf8');
      stdin.resume();
      const done = (err?: Error) => {
        stdin.setRawMode(false);
        stdin.pause();
        stdin.off('data', onData);
        process.stderr.write('\n');
        if (err) reject(err);
        else resolve(buf);
      };
      const onData = (chunk: string) => {
        for (const ch of chunk) {
          if (ch === '\r' || ch === '\n' || ch === '\u0004') return done();
          if (ch === '\u0003') return done(new IdsyncError('CONFIG_INVALID', 'cancelled'));
          if (ch === '\u007f' || ch === '\b') buf = buf.slice(0, -1);
          else buf += ch;
        }
      };
      stdin.on('data', onData);
    });
  } else {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(Buffer.from(chunk as Buffer));
    value = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  }
  if (value.length === 0) {
    throw new IdsyncError('CONFIG_INVALID', 'no password was given on stdin', {
      hint: 'Type it when asked, or pipe it: `printf %s "$PASSWORD" | idsync cloud admin ...`.',
    });
  }
  return value;
}

interface HttpResult {
  status: number;
  body: Record<string, unknown>;
}

async function call(base: string, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body: unknown, headers: Record<string, string>): Promise<HttpResult> {
  let res;
  try {
    res = await request(new URL(path, base), {
      method,
      headers: { accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).name;
    throw new IdsyncError('CLOUD_UNREACHABLE', `cannot reach the cloud directory at ${base}: ${code}`, {
      hint: 'Check --url (or IDSYNC_CLOUD_URL) and that `idsync cloud serve` is running.',
      details: { url: base, code },
      cause: err,
    });
  }
  const text = await res.body.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    parsed = {};
  }
  return { status: res.statusCode, body: parsed };
}

async function adminToken(base: string): Promise<string> {
  const username = process.env.IDSYNC_CLOUD_ADMIN_USER || 'admin';
  const password = process.env.IDSYNC_CLOUD_ADMIN_PASSWORD;
  if (!password) {
    throw new IdsyncError('CREDENTIAL_MISSING', 'IDSYNC_CLOUD_ADMIN_PASSWORD is not set', {
      hint: 'Export IDSYNC_CLOUD_ADMIN_USER and IDSYNC_CLOUD_ADMIN_PASSWORD with a global administrator\'s credentials.',
    });
  }
  const res = await call(base, 'POST', '/oauth2/token', { grant_type: 'password', username, password, scope: 'idsync.api' }, {});
  if (res.status !== 200 || typeof res.body.access_token !== 'string') {
    throw new IdsyncError('CLOUD_AUTH_FAILED', `the cloud directory refused the administrator "${username}": the user name or password is incorrect`, {
      hint: 'Check IDSYNC_CLOUD_ADMIN_USER and IDSYNC_CLOUD_ADMIN_PASSWORD (after repeated failures the address is locked out for a while).',
      details: { status: res.status, error: res.body.error },
    });
  }
  return res.body.access_token;
}

/** An admin API call as the administrator from the environment; throws on any non-2xx. */
async function adminCall(opts: AdminOptions, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<Record<string, unknown>> {
  const token = await adminToken(opts.url);
  const res = await call(opts.url, method, path, body, { authorization: `Bearer ${token}` });
  if (res.status >= 200 && res.status < 300) return res.body;
  const err = (res.body.error ?? {}) as { code?: string; message?: string };
  const message = err.message ?? `HTTP ${res.status}`;
  if (res.status === 401 || res.status === 403) {
    throw new IdsyncError('CLOUD_AUTH_FAILED', `the cloud directory denied the request: ${message}`, {
      hint: 'The admin commands need a GlobalAdministrator account in IDSYNC_CLOUD_ADMIN_USER.',
      details: { status: res.status, code: err.code },
    });
  }
  throw new IdsyncError(res.status >= 500 ? 'CLOUD_SERVER_ERROR' : 'CLOUD_REJECTED', `the cloud directory refused the request: ${message}`, {
    hint: res.status >= 500 ? 'See the cloud directory log.' : 'Correct the request as the message says.',
    details: { status: res.status, code: err.code },
  });
}

function withAdminOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--url <url>', 'cloud directory URL').env('IDSYNC_CLOUD_URL').default(DEFAULT_URL))
    .option('--json', 'machine-readable output');
}

const ROLE_HELP = 'role: "sync" (DirectorySynchronizationAccounts: SCIM and password hashes) or "admin" (GlobalAdministrator)';

export const registerCloudCommands: RegisterCommand = (program) => {
  const cloud = program.command('cloud').description('run and administer the cloud directory (SCIM 2.0, tokens, password sign-in)');

  cloud
    .command('serve')
    .description('run the cloud directory until SIGINT/SIGTERM')
    .addOption(new Option('--data <dir>', 'data directory (holds cloud.db)').env('IDSYNC_CLOUD_DATA').default(DEFAULT_DATA_DIR))
    .addOption(
      new Option(
        '--database <url>',
        'keep the state in PostgreSQL instead of <data>/cloud.db: postgres://USER@HOST:PORT/DB (password in $IDSYNC_CLOUD_DATABASE_PASSWORD or `idsync cloud credentials set database`); several nodes may share it',
      ).env('IDSYNC_CLOUD_DATABASE'),
    )
    .addOption(new Option('--database-tls <mode>', 'TLS to PostgreSQL: disable, require (encrypt) or verify-full (encrypt and check the certificate and name)').choices(['disable', 'require', 'verify-full']).env('IDSYNC_CLOUD_DATABASE_TLS'))
    .addOption(new Option('--database-ca <file>', 'with verify-full: the CA certificate(s) (PEM) that signed the server\'s; default the system CAs').env('IDSYNC_CLOUD_DATABASE_CA'))
    .addOption(new Option('--database-server-name <name>', 'with verify-full: the name the certificate must carry; default the URL\'s host').env('IDSYNC_CLOUD_DATABASE_SERVER_NAME'))
    .addOption(new Option('--host <host>', 'address to listen on (loopback by default)').env('IDSYNC_CLOUD_HOST').default('127.0.0.1'))
    .addOption(new Option('--port <port>', 'port to listen on (0 = a free port)').env('IDSYNC_CLOUD_PORT').default(String(DEFAULT_PORT)))
    .option('--admin-user <name>', 'first start only: name of the global administrator (default $IDSYNC_CLOUD_ADMIN_USER or "admin")')
    .option('--public-url <url>', 'URL clients use, when a proxy fronts the server (the tokens\' issuer)')
    .option('--trust-proxy', 'take the client address from X-Forwarded-For (only behind your own proxy)')
    .addOption(new Option('--log-level <level>', 'JSON log level on stderr').choices(['silent', 'error', 'warn', 'info', 'debug']).default('info'))
    .option('--json', 'print the startup summary as JSON')
    .addHelpText(
      'after',
      `
On the first start a global administrator is created. Its password comes from
IDSYNC_CLOUD_ADMIN_PASSWORD; without it a password is generated and printed once:
save it. It is stored only as a hash.

With --database (or IDSYNC_CLOUD_DATABASE) the state lives in PostgreSQL, and any number of
nodes behind a load balancer may share it: signing keys, token revocation, lockout counters,
audit and password hashes are all there. Give the password sealed in the data directory
(\`idsync cloud credentials set database\`, read when connecting) or in
IDSYNC_CLOUD_DATABASE_PASSWORD, rather than in the URL; it is never printed. TLS beyond the
URL's sslmode: --database-tls require | verify-full (with --database-ca, --database-server-name).

Examples:
  IDSYNC_CLOUD_ADMIN_PASSWORD='...' idsync cloud serve --data /var/lib/idsync-cloud
  IDSYNC_CLOUD_DATABASE_PASSWORD='...' idsync cloud serve --database postgres://idsync@db.example:5432/idsync_cloud
  printf %s "$DB_PASSWORD" | idsync cloud credentials set database --data /var/lib/idsync-cloud
  idsync cloud serve --data /var/lib/idsync-cloud --database postgres://idsync@db.example:5432/idsync_cloud \\
      --database-tls verify-full --database-ca /etc/ssl/db-ca.pem
  idsync cloud serve --port 0 --json`,
    )
    .action(serve);

  const credentials = cloud
    .command('credentials')
    .description("the cloud directory's own secrets (the PostgreSQL password), sealed in its data directory")
    .addHelpText(
      'after',
      `
Sealed with the cloud's key: IDSYNC_CLOUD_SECRET_KEY (base64, 32 bytes) or <data>/cloud-secret.key
(made on first use, owner-only). Values are read from stdin and never printed.

Example:
  printf %s "$DB_PASSWORD" | idsync cloud credentials set database --data /var/lib/idsync-cloud`,
    );
  const dataOption = () => new Option('--data <dir>', 'data directory of the cloud directory').env('IDSYNC_CLOUD_DATA').default(DEFAULT_DATA_DIR);
  const credentialName = (name: string): CloudCredential => {
    if (!isCloudCredential(name)) throw new IdsyncError('CREDENTIAL_INVALID', `unknown cloud credential "${name.slice(0, 64)}"`, { hint: `Known: ${CLOUD_CREDENTIALS.join(', ')}.` });
    return name;
  };
  credentials
    .command('set <name>')
    .description('seal a secret (read from stdin) under <name>: "database" is the PostgreSQL password')
    .addOption(dataOption())
    .action(async (name: string, opts: { data: string }) => {
      const which = credentialName(name);
      setCloudCredential(opts.data, which, await readSecretFromStdin(`${which} password: `));
      println(`credential "${which}" sealed in ${opts.data}; \`idsync cloud serve\` reads it when it connects`);
    });
  credentials
    .command('delete <name>')
    .description('remove a sealed secret')
    .addOption(dataOption())
    .action((name: string, opts: { data: string }) => {
      const which = credentialName(name);
      println(deleteCloudCredential(opts.data, which) ? `credential "${which}" deleted` : `no credential "${which}" in ${opts.data}`);
    });
  credentials
    .command('list')
    .description('list the sealed secrets (names and when they were set, never values)')
    .addOption(dataOption())
    .option('--json', 'machine-readable output')
    .action((opts: { data: string; json?: boolean }) => {
      const list = listCloudCredentials(opts.data);
      if (opts.json) printJson({ credentials: list });
      else if (list.length === 0) println(`no credentials in ${opts.data}`);
      else for (const c of list) println(`${c.name}  set ${c.changedAt ?? '(unknown)'}`);
    });

  const admin = cloud
    .command('admin')
    .description('administer cloud accounts and clients (as $IDSYNC_CLOUD_ADMIN_USER / $IDSYNC_CLOUD_ADMIN_PASSWORD)')
    .addHelpText(
      'after',
      `
Every admin command signs in as the global administrator named by IDSYNC_CLOUD_ADMIN_USER
(default "admin") with IDSYNC_CLOUD_ADMIN_PASSWORD. New passwords are read from stdin,
never from the command line.`,
    );

  withAdminOptions(admin.command('create-account'))
    .description('create a cloud account; its password is read from stdin')
    .requiredOption('--username <name>', 'account name')
    .requiredOption('--role <role>', ROLE_HELP)
    .addHelpText('after', `\nExample:\n  printf %s "$SYNC_PASSWORD" | idsync cloud admin create-account --username sync1 --role sync`)
    .action(async (opts: AdminOptions & { username: string; role: string }) => {
      const password = await readSecretFromStdin(`Password for ${opts.username}: `);
      const res = await adminCall(opts, 'POST', '/admin/v1/accounts', { username: opts.username, role: opts.role, password });
      if (opts.json) printJson(res);
      else println(`created ${String(res.role)} account "${String(res.username)}"`);
    });

  withAdminOptions(admin.command('set-password'))
    .description("change an account's password (read from stdin); its existing tokens stop working at once")
    .requiredOption('--username <name>', 'account name')
    .addHelpText(
      'after',
      `\nThen give the sync service the new password: \`idsync credentials set cloud\`.\n\nExample:\n  printf %s "$NEW_PASSWORD" | idsync cloud admin set-password --username sync1`,
    )
    .action(async (opts: AdminOptions & { username: string }) => {
      const password = await readSecretFromStdin(`New password for ${opts.username}: `);
      const res = await adminCall(opts, 'PATCH', `/admin/v1/accounts/${encodeURIComponent(opts.username)}`, { password });
      if (opts.json) printJson(res);
      else println(`password of "${String(res.username)}" changed; its earlier tokens are revoked`);
    });

  withAdminOptions(admin.command('list-accounts'))
    .description('list cloud accounts (never their secrets)')
    .action(async (opts: AdminOptions) => {
      const res = await adminCall(opts, 'GET', '/admin/v1/accounts');
      if (opts.json) printJson(res);
      else println(table(res.accounts as Record<string, unknown>[], ['username', 'role', 'createdAt', 'passwordChangedAt']));
    });

  withAdminOptions(admin.command('delete-account'))
    .description('delete a cloud account (its tokens stop working at once)')
    .requiredOption('--username <name>', 'account name')
    .action(async (opts: AdminOptions & { username: string }) => {
      await adminCall(opts, 'DELETE', `/admin/v1/accounts/${encodeURIComponent(opts.username)}`);
      if (opts.json) printJson({ deleted: opts.username });
      else println(`deleted account "${opts.username}"`);
    });

  withAdminOptions(admin.command('create-client'))
    .description('create an OAuth client (client_credentials); its secret is printed once')
    .requiredOption('--client-id <id>', 'client id')
    .requiredOption('--role <role>', ROLE_HELP)
    .action(async (opts: AdminOptions & { clientId: string; role: string }) => {
      const res = await adminCall(opts, 'POST', '/admin/v1/clients', { clientId: opts.clientId, role: opts.role });
      if (opts.json) printJson(res);
      else {
        println(`created ${String(res.role)} client "${String(res.clientId)}"; its secret (shown only this once, save it now):`);
        println(`    ${String(res.clientSecret)}`);
      }
    });

  withAdminOptions(admin.command('delete-client'))
    .description('delete an OAuth client (its tokens stop working at once)')
    .requiredOption('--client-id <id>', 'client id')
    .action(async (opts: AdminOptions & { clientId: string }) => {
      await adminCall(opts, 'DELETE', `/admin/v1/clients/${encodeURIComponent(opts.clientId)}`);
      if (opts.json) printJson({ deleted: opts.clientId });
      else println(`deleted client "${opts.clientId}"`);
    });

  withAdminOptions(admin.command('audit'))
    .description('show the audit log (sign-ins, token requests, admin actions), newest first')
    .addOption(new Option('--type <type>', 'only this kind').choices(['signin', 'token', 'admin', 'passwordHashes']))
    .option('--since <iso>', 'only records at or after this ISO date-time')
    .option('--limit <n>', 'at most this many records', '100')
    .action(async (opts: AdminOptions & { type?: string; since?: string; limit: string }) => {
      const q = new URLSearchParams({ limit: opts.limit });
      if (opts.type) q.set('type', opts.type);
      if (opts.since) q.set('since', opts.since);
      const res = await adminCall(opts, 'GET', `/admin/v1/audit?${q.toString()}`);
      if (opts.json) printJson(res);
      else println(table(res.records as Record<string, unknown>[], ['at', 'type', 'subject', 'ip', 'result', 'reason']));
    });
};
