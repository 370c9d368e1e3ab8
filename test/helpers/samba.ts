/**
 * A private Samba AD DC (realm LAB.TEST, domain LAB) for tests, loopback only, DNS off.
 *
 * Samba's LDAP ports are fixed (389/636), so only ONE DC can run per host. The test runner
 * (scripts/run-tests.ts) starts one per run and describes it in IDSYNC_TEST_SAMBA; tests call
 * `useSambaDC()` to get it and work in their own OU (`seedAdUsers(dc, { ou: 'mytest', ... })`).
 * Run outside the runner, useSambaDC() starts (and its stop() stops) a DC of its own.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Attribute, Change, Client, Control } from 'ldapts';
import { killOnExit } from './children.js';
import { findBinary } from './integration.js';

export const SAMBA_BASE_DN = 'DC=lab,DC=test';
export const SAMBA_ADMIN_PASSWORD = 'Adm1nPass!';

export interface SambaDC {
  dir: string;
  /** The loopback address it listens on (LDAP 389/636, RPC 135 and 49152+). */
  host: string;
  url: string;
  ldapsUrl: string;
  baseDn: string;
  /** Bind name for the admin (a UPN works as a bind DN on AD). */
  adminUpn: string;
  adminDn: string;
  adminPassword: string;
  /** Samba's self-signed CA (private/tls/ca.pem), created at first start. */
  caFile: string;
  /** The name in the DC's certificate (CN=DC1.lab.test, no SAN). */
  tlsServerName: string;
  /** Root-only ldapi socket that returns secret attributes (unicodePwd) to anyone who can open it. */
  privLdapiPath: string;
  samLdb: string;
  smbConf: string;
  /** PID of the samba root process; 0 when this process does not own the DC. */
  pid: number;
  /** Whether this handle owns the DC (stop() stops it) or shares the runner's (stop() is a no-op). */
  owned: boolean;
  /** A client bound as Administrator over ldap:// (caller unbinds). */
  client(): Promise<Client>;
  stop(): Promise<void>;
}

export interface StartSambaOptions {
  /** smb.conf "server services" (default ldap, kdc: one process, ready in ~0.3 s). Add rpc for DRSUAPI. */
  services?: string[];
  /**
   * The loopback address the DC binds (default 127.0.0.1). A private DC on 127.0.0.2 runs next to
   * the runner's shared one (Linux routes all of 127/8 to lo), e.g. for a test that restarts it.
   */
  host?: string;
  /** Runs after provisioning, before the DC starts (offline seeding with ldbadd, for benches). */
  beforeStart?: (dc: { dir: string; samLdb: string; smbConf: string }) => Promise<void>;
}

function run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024, timeout: opts.timeoutMs ?? 120000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args[0] ?? ''} ${args[1] ?? ''} failed: ${(stderr || stdout || err.message).slice(-3000)}`));
      else resolve(stdout);
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

function portOpen(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.setTimeout(1000, () => {
      s.destroy();
      resolve(false);
    });
  });
}

async function rootDseAnswers(host: string): Promise<boolean> {
  const c = new Client({ url: `ldap://${host}:389`, connectTimeout: 1000, timeout: 2000 });
  try {
    await c.search('', { scope: 'base', attributes: ['dnsHostName'] });
    return true;
  } catch {
    return false;
  } finally {
    await c.unbind().catch(() => undefined);
  }
}

function handle(dir: string, pid: number, owned: boolean, stop: () => Promise<void>, host = '127.0.0.1'): SambaDC {
  const url = `ldap://${host}:389`;
  return {
    dir,
    host,
    url,
    ldapsUrl: `ldaps://${host}:636`,
    baseDn: SAMBA_BASE_DN,
    adminUpn: 'Administrator@lab.test',
    adminDn: `CN=Administrator,CN=Users,${SAMBA_BASE_DN}`,
    adminPassword: SAMBA_ADMIN_PASSWORD,
    caFile: join(dir, 'private/tls/ca.pem'),
    tlsServerName: 'DC1.lab.test',
    privLdapiPath: join(dir, 'private/ldap_priv/ldapi'),
    samLdb: join(dir, 'private/sam.ldb'),
    smbConf: join(dir, 'etc/smb.conf'),
    pid,
    owned,
    async client() {
      const c = new Client({ url, timeout: 30000 });
      await c.bind('Administrator@lab.test', SAMBA_ADMIN_PASSWORD);
      return c;
    },
    stop,
  };
}

/** Provisions a fresh DC in `dir` (default: a new temp dir) and starts it. ~5 s. */
export async function startSambaDC(dir?: string, opts: StartSambaOptions = {}): Promise<SambaDC> {
  const tool = findBinary('samba-tool');
  if (!findBinary('samba') || !tool) throw new Error('Samba AD DC is not installed (apt-get install samba samba-ad-dc samba-ad-provision winbind krb5-user ldb-tools)');
  const host = opts.host ?? '127.0.0.1';
  if (await portOpen(389, host)) {
    throw new Error(`port 389 is already in use on ${host} (another Samba DC or LDAP server?). Only one Samba DC can run per address: stop it, or run the tests through scripts/run-tests.ts, which shares one DC.`);
  }
  const T = dir ?? mkdtempSync(join(tmpdir(), 'idsync-samba-'));
  rmSync(T, { recursive: true, force: true });
  mkdirSync(join(T, 'run'), { recursive: true });
  mkdirSync(join(T, 'log'), { recursive: true });
  await run(tool, [
    'domain', 'provision', `--targetdir=${T}`, '--realm=LAB.TEST', '--domain=LAB', '--server-role=dc', '--dns-backend=NONE',
    // lo: 127.0.0.1 and ::1; another address binds only that one, so two DCs can share a netns
    '--use-rfc2307', `--adminpass=${SAMBA_ADMIN_PASSWORD}`, '--host-name=dc1', '--option=netbios name=DC1',
    `--option=interfaces=${host === '127.0.0.1' ? 'lo' : `${host}/8`}`, '--option=bind interfaces only=yes', '--option=server services=-dns -dnsupdate -nbt -wrepl',
    '--option=disable netbios=yes', `--option=log file=${T}/log/log.%m`, `--option=pid directory=${T}/run`,
    `--option=ncalrpc dir=${T}/run/ncalrpc`, `--option=winbindd socket directory=${T}/run/winbindd`,
    `--option=ntp signd socket directory=${T}/run/ntp_signd`,
  ]);
  const smbConf = join(T, 'etc/smb.conf');
  const services = (opts.services ?? (process.env.IDSYNC_TEST_SAMBA_SERVICES?.split(/[ ,]+/).filter(Boolean) || undefined) ?? ['ldap', 'kdc']).join(', ');
  const conf = readFileSync(smbConf, 'utf8')
    .split('\n')
    .filter((l) => !/^\s*dns forwarder\s*=/.test(l))
    .map((l) => (/^\s*server services\s*=/.test(l) ? `\tserver services = ${services}` : l))
    .join('\n')
    .replace(/^\[global\]$/m, '[global]\n\tldap server require strong auth = no');
  writeFileSync(smbConf, conf);
  await run(tool, ['domain', 'passwordsettings', 'set', '--complexity=off', '--history-length=0', '--min-pwd-age=0', '--max-pwd-age=0', '-H', join(T, 'private/sam.ldb')]);
  await opts.beforeStart?.({ dir: T, samLdb: join(T, 'private/sam.ldb'), smbConf });
  return launchSambaDC(T, { host, removeOnStop: !dir && process.env.IDSYNC_KEEP_TEST_DIRS !== '1' });
}

/**
 * Starts samba on a DC already provisioned in `dir` (by startSambaDC): for a restart, after the
 * previous process was stopped or killed. stop() stops this process and keeps `dir`.
 */
export async function launchSambaDC(dir: string, opts: { host?: string; removeOnStop?: boolean } = {}): Promise<SambaDC> {
  const samba = findBinary('samba');
  if (!samba) throw new Error('Samba AD DC is not installed');
  const host = opts.host ?? '127.0.0.1';
  const T = dir;
  const smbConf = join(T, 'etc/smb.conf');
  let out = '';
  const child = spawn(samba, ['-F', '-M', 'single', '--debug-stdout', '-d', '1', '-s', smbConf], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = (d: Buffer): void => {
    out = (out + d.toString()).slice(-8000);
  };
  child.stdout?.on('data', log);
  child.stderr?.on('data', log);
  killOnExit(child);
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => child.kill('SIGKILL'), 10000);
        child.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        child.kill('SIGTERM');
      });
    }
    for (let i = 0; i < 100 && (await portOpen(389, host)); i++) await new Promise((r) => setTimeout(r, 100));
    writeFileSync(join(T, 'log/output.log'), out);
    if (opts.removeOnStop) rmSync(T, { recursive: true, force: true });
  };
  const end = Date.now() + 60000;
  while (!(await rootDseAnswers(host))) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`samba exited (${child.exitCode ?? child.signalCode}): ${out}`);
    if (Date.now() > end) {
      await stop();
      throw new Error(`samba did not answer LDAP within 60 s: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  // The TLS certificate is generated at startup; wait for the CA file.
  const ca = join(T, 'private/tls/ca.pem');
  for (let i = 0; i < 100 && !existsSync(ca); i++) await new Promise((r) => setTimeout(r, 100));
  return handle(T, child.pid as number, true, stop, host);
}

/** What the runner puts in IDSYNC_TEST_SAMBA. */
export function sambaToEnv(dc: SambaDC): string {
  return JSON.stringify({ dir: dc.dir, pid: dc.pid });
}

let own: Promise<SambaDC> | undefined;

/**
 * The DC for this test: the runner's shared one (IDSYNC_TEST_SAMBA), else one started for this
 * process (shared by every caller in the process; the first stop() stops it).
 */
export async function useSambaDC(): Promise<SambaDC> {
  const env = process.env.IDSYNC_TEST_SAMBA;
  if (env) {
    const { dir, pid } = JSON.parse(env) as { dir: string; pid: number };
    return handle(dir, pid, false, async () => undefined);
  }
  // the same services as the runner's DC (rpc: DRSUAPI for the password replication tests)
  own ??= startSambaDC(undefined, { services: ['ldap', 'kdc', 'rpc'] }).then((dc) => {
    const stop = dc.stop;
    dc.stop = async () => {
      own = undefined;
      await stop();
    };
    return dc;
  });
  return own;
}

// ---------------------------------------------------------------------------------------------
// seeding

/** LDAP_SERVER_TREE_DELETE_OID: delete a whole subtree in one operation. */
class TreeDeleteControl extends Control {
  constructor() {
    super('1.2.840.113556.1.4.805', { critical: true });
  }
}

export interface SeedAdOptions {
  /** Name of the OU created under the domain root (deleted first if it exists). */
  ou: string;
  users: number;
  groups?: number;
  /** Each group i also contains group i+1. */
  nested?: boolean;
  /** Set this password on every user (≈ +14 ms per user); default: no password, UAC 544. */
  password?: string;
  /** Make every n-th user (index % n === n-1) disabled (UAC |= 2). */
  disableEvery?: number;
}

export interface SeededAdUser {
  dn: string;
  sAMAccountName: string;
  userPrincipalName: string;
  index: number;
  disabled: boolean;
}

export interface SeededAdGroup {
  dn: string;
  cn: string;
  sAMAccountName: string;
  /** DNs of the direct members (users, then the nested group). */
  members: string[];
}

export interface SeededAd {
  ouDn: string;
  users: SeededAdUser[];
  groups: SeededAdGroup[];
}

/** A sAMAccountName prefix of <= 14 characters unique per OU name (sAMAccountName max is 20). */
/** The modification that sets an AD password: unicodePwd is the quoted password in UTF-16LE (MS-ADTS 3.1.1.3.1.5.1). */
export function setPasswordChange(password: string): Change {
  return new Change({ operation: 'replace', modification: new Attribute({ type: 'unicodePwd', values: [Buffer.from(`"${password}"`, 'utf16le')] }) });
}

export function samPrefix(ou: string): string {
  const alnum = ou.toLowerCase().replace(/[^a-z0-9]/g, '');
  if (alnum.length <= 14 && alnum.length > 0) return alnum;
  return alnum.slice(0, 9) + createHash('sha1').update(ou).digest('hex').slice(0, 5);
}

async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  });
  await Promise.all(workers);
}

/** Deletes an OU and everything under it (no error when absent). */
export async function deleteAdTree(dc: SambaDC, dn: string): Promise<void> {
  const c = await dc.client();
  try {
    await c.del(dn, new TreeDeleteControl()).catch((err: { code?: number }) => {
      if (err.code !== 32) throw err;
    });
  } finally {
    await c.unbind();
  }
}

/** Creates an OU with `users` users and `groups` groups over LDAP (1,000 users ≈ 5–10 s). */
export async function seedAdUsers(dc: SambaDC, o: SeedAdOptions): Promise<SeededAd> {
  const ouDn = `OU=${o.ou},${dc.baseDn}`;
  await deleteAdTree(dc, ouDn);
  const c = await dc.client();
  try {
    await c.add(ouDn, { objectClass: ['top', 'organizationalUnit'], ou: o.ou });
    const prefix = samPrefix(o.ou);
    const users: SeededAdUser[] = [];
    for (let i = 0; i < o.users; i++) {
      const sam = `${prefix}${i}`;
      const disabled = !!o.disableEvery && i % o.disableEvery === o.disableEvery - 1;
      users.push({ dn: `CN=${sam},${ouDn}`, sAMAccountName: sam, userPrincipalName: `${sam}@lab.test`, index: i, disabled });
    }
    const pw = o.password === undefined ? undefined : Buffer.from(`"${o.password}"`, 'utf16le');
    await inParallel(users, 8, async (u) => {
      const attrs: Attribute[] = [
        new Attribute({ type: 'objectClass', values: ['top', 'person', 'organizationalPerson', 'user'] }),
        new Attribute({ type: 'sAMAccountName', values: [u.sAMAccountName] }),
        new Attribute({ type: 'userPrincipalName', values: [u.userPrincipalName] }),
        new Attribute({ type: 'givenName', values: ['Test'] }),
        new Attribute({ type: 'sn', values: [`User ${u.index}`] }),
        new Attribute({ type: 'displayName', values: [`Test User ${u.index}`] }),
        new Attribute({ type: 'mail', values: [`${u.sAMAccountName}@lab.test`] }),
        new Attribute({ type: 'department', values: [`Dept ${u.index % 7}`] }),
        new Attribute({ type: 'title', values: ['Engineer'] }),
        new Attribute({ type: 'company', values: ['Lab Inc'] }),
        new Attribute({ type: 'telephoneNumber', values: [`+1 555 ${String(u.index).padStart(4, '0')}`] }),
        new Attribute({ type: 'mobile', values: [`+1 666 ${String(u.index).padStart(4, '0')}`] }),
        new Attribute({ type: 'employeeID', values: [`E${u.index}`] }),
        new Attribute({ type: 'description', values: [`seeded by idsync tests (${o.ou})`] }),
      ];
      if (pw) {
        attrs.push(new Attribute({ type: 'unicodePwd', values: [pw] }));
        attrs.push(new Attribute({ type: 'userAccountControl', values: [String(512 | (u.disabled ? 2 : 0))] }));
      } else {
        attrs.push(new Attribute({ type: 'userAccountControl', values: [String(544 | (u.disabled ? 2 : 0))] }));
      }
      await c.add(u.dn, attrs);
    });
    const groups: SeededAdGroup[] = [];
    const m = o.groups ?? 0;
    for (let j = 0; j < m; j++) {
      const cn = `${prefix}g${j}`;
      groups.push({ dn: `CN=${cn},${ouDn}`, cn, sAMAccountName: cn, members: users.filter((u) => u.index % m === j).map((u) => u.dn) });
    }
    if (o.nested) for (let j = 0; j + 1 < m; j++) (groups[j] as SeededAdGroup).members.push((groups[j + 1] as SeededAdGroup).dn);
    // create from the last so a nested member exists before its parent references it
    for (let j = m - 1; j >= 0; j--) {
      const g = groups[j] as SeededAdGroup;
      await c.add(g.dn, { objectClass: ['top', 'group'], sAMAccountName: g.sAMAccountName, cn: g.cn, description: `seeded group ${j}` });
      for (let k = 0; k < g.members.length; k += 500) {
        await c.modify(g.dn, new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: g.members.slice(k, k + 500) }) }));
      }
    }
    return { ouDn, users, groups };
  } finally {
    await c.unbind();
  }
}
