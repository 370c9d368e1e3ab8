/**
 * A throwaway OpenLDAP server for one test file: own temp dir, own config (slapd.conf), own mdb
 * database, random free high port(s), foreground child. ~0.1 s to start.
 *
 *   const ldap = await startSlapd({ tls: true });
 *   after(() => ldap.stop());
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from 'ldapts';
import type { LdapConnectorConfig } from '../../src/config/schema.js';
import { killOnExit } from './children.js';
import { findBinary } from './integration.js';
import { createTestCa, issueServerCert, type TestCa } from './tls.js';

export const SLAPD_BASE_DN = 'dc=lab,dc=test';
export const SLAPD_ADMIN_DN = 'cn=admin,dc=lab,dc=test';
export const SLAPD_ADMIN_PASSWORD = 'secret';
export const SAMBA_NT_SCHEMA = fileURLToPath(new URL('../fixtures/samba-nt.schema', import.meta.url));

export interface SlapdOptions {
  /**
   * Also listen on ldaps:// (and allow StartTLS on ldap://) with a fresh CA and a server cert for
   * localhost / 127.0.0.1 / ::1. Pass an object to get an expired cert or other SANs.
   */
  tls?: boolean | { expired?: boolean; san?: string[] | null; cn?: string };
  /** Load test/fixtures/samba-nt.schema (sambaSamAccount, sambaNTPassword). */
  sambaSchema?: boolean;
  /** Add the accesslog overlay (database cn=accesslog; logs every successful write). */
  accesslog?: boolean;
  /** LDIF loaded with slapadd before start (fast: 100k entries ≈ 1.5 s). Base entries exist already. */
  seedLdif?: string;
  /** An LDIF file loaded with slapadd after seedLdif (for data sets too big for a string). */
  seedLdifFile?: string;
  /** Create ou=people and ou=groups under the base (default true). */
  baseOus?: boolean;
}

export interface Slapd {
  url: string;
  ldapsUrl?: string;
  port: number;
  tlsPort?: number;
  baseDn: string;
  adminDn: string;
  adminPassword: string;
  /** PEM of the CA that signed the server cert (tls only). */
  caFile?: string;
  /** The CA itself (cert + key), to issue more certs in a test. */
  ca?: TestCa;
  dir: string;
  ldapiPath: string;
  pid: number;
  /** Adds entries (plain LDIF content records) through ldapadd as the admin. */
  add(ldif: string): Promise<void>;
  /** Applies change records (changetype: modify/delete/modrdn) through ldapmodify as the admin. */
  modify(ldif: string): Promise<void>;
  /** A client bound as the admin over ldap:// (caller unbinds). */
  client(): Promise<Client>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

function config(dir: string, o: SlapdOptions, tlsFiles?: { ca: string; cert: string; key: string }): string {
  const lines = [
    'include /etc/ldap/schema/core.schema',
    'include /etc/ldap/schema/cosine.schema',
    'include /etc/ldap/schema/nis.schema',
    'include /etc/ldap/schema/inetorgperson.schema',
    ...(o.sambaSchema ? [`include ${SAMBA_NT_SCHEMA}`] : []),
    `pidfile ${dir}/slapd.pid`,
    `argsfile ${dir}/slapd.args`,
    'modulepath /usr/lib/ldap',
    'moduleload back_mdb',
    'moduleload syncprov',
    ...(o.accesslog ? ['moduleload accesslog'] : []),
    `authz-regexp "gidNumber=0[+]uidNumber=0,cn=peercred,cn=external,cn=auth" "${SLAPD_ADMIN_DN}"`,
    ...(tlsFiles ? [`TLSCACertificateFile ${tlsFiles.ca}`, `TLSCertificateFile ${tlsFiles.cert}`, `TLSCertificateKeyFile ${tlsFiles.key}`] : []),
    '',
  ];
  if (o.accesslog) {
    mkdirSync(join(dir, 'alog'));
    lines.push(
      'database mdb',
      'suffix "cn=accesslog"',
      `rootdn "${SLAPD_ADMIN_DN}"`,
      `directory ${dir}/alog`,
      'maxsize 1073741824',
      'dbnosync',
      'index reqStart,reqEnd,objectClass,entryCSN eq',
      'limits * size.pr=unlimited size.prtotal=unlimited',
      '',
    );
  }
  lines.push(
    'database mdb',
    `suffix "${SLAPD_BASE_DN}"`,
    `rootdn "${SLAPD_ADMIN_DN}"`,
    `rootpw ${SLAPD_ADMIN_PASSWORD}`,
    `directory ${dir}/db`,
    'maxsize 4294967296',
    'dbnosync',
    'index objectClass,entryCSN,entryUUID,uid,cn,modifyTimestamp eq',
    'limits * size.pr=unlimited size.prtotal=unlimited',
    'access to attrs=userPassword by self write by anonymous auth by * none',
    'access to * by * read',
    'overlay syncprov',
    'syncprov-checkpoint 100 10',
    'syncprov-sessionlog 100000',
  );
  if (o.accesslog) {
    lines.push('overlay accesslog', 'logdb "cn=accesslog"', 'logops writes', 'logsuccess TRUE', 'logpurge 07+00:00 01+00:00');
  }
  return `${lines.join('\n')}\n`;
}

async function waitReady(url: string, child: ChildProcess, stderr: () => string, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`slapd exited (${child.exitCode ?? child.signalCode}): ${stderr()}`);
    const c = new Client({ url, connectTimeout: 500, timeout: 2000 });
    try {
      await c.bind(SLAPD_ADMIN_DN, SLAPD_ADMIN_PASSWORD);
      await c.unbind();
      return;
    } catch (err) {
      await c.unbind().catch(() => undefined);
      if (Date.now() > end) throw new Error(`slapd not ready at ${url}: ${(err as Error).message}; ${stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function startSlapd(opts: SlapdOptions = {}): Promise<Slapd> {
  const slapd = findBinary('slapd');
  if (!slapd) throw new Error('slapd is not installed (apt-get install slapd ldap-utils)');
  const dir = mkdtempSync(join(tmpdir(), 'idsync-slapd-'));
  mkdirSync(join(dir, 'db'));
  let ca: TestCa | undefined;
  let tlsFiles: { ca: string; cert: string; key: string } | undefined;
  if (opts.tls) {
    ca = createTestCa(dir);
    const t = typeof opts.tls === 'object' ? opts.tls : {};
    const cert = issueServerCert(dir, ca, { expired: t.expired, san: t.san, cn: t.cn });
    tlsFiles = { ca: ca.certFile, cert: cert.certFile, key: cert.keyFile };
  }
  const conf = join(dir, 'slapd.conf');
  writeFileSync(conf, config(dir, opts, tlsFiles));
  const base = [
    `dn: ${SLAPD_BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\no: Lab\ndc: lab\n`,
    ...(opts.baseOus === false
      ? []
      : [`dn: ou=people,${SLAPD_BASE_DN}\nobjectClass: organizationalUnit\nou: people\n`, `dn: ou=groups,${SLAPD_BASE_DN}\nobjectClass: organizationalUnit\nou: groups\n`]),
  ].join('\n');
  const seed = `${base}\n${opts.seedLdif ? `${opts.seedLdif.replace(/^version:\s*1\s*\n/, '')}\n` : ''}`;
  writeFileSync(join(dir, 'seed.ldif'), seed);
  await run(findBinary('slapadd') ?? 'slapadd', ['-q', '-w', '-f', conf, '-b', SLAPD_BASE_DN, '-l', join(dir, 'seed.ldif')]);
  // Large data sets (benchmarks) come as a file, so they never sit in memory as one string.
  if (opts.seedLdifFile) await run(findBinary('slapadd') ?? 'slapadd', ['-q', '-w', '-f', conf, '-b', SLAPD_BASE_DN, '-l', opts.seedLdifFile]);
  const ldapiPath = join(dir, 'ldapi');

  let lastErr: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const tlsPort = opts.tls ? await freePort() : undefined;
    const urls = [`ldap://127.0.0.1:${port}/`, ...(tlsPort ? [`ldaps://127.0.0.1:${tlsPort}/`] : []), `ldapi://${encodeURIComponent(ldapiPath)}/`];
    let err = '';
    const child = spawn(slapd, ['-f', conf, '-h', urls.join(' '), '-d', 'none'], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-4000);
    });
    killOnExit(child);
    const url = `ldap://127.0.0.1:${port}`;
    try {
      await waitReady(url, child, () => err);
    } catch (e) {
      lastErr = e;
      await stopChild(child);
      continue; // most likely a port race: try other ports
    }
    const ldapArgs = ['-x', '-H', url, '-D', SLAPD_ADMIN_DN, '-w', SLAPD_ADMIN_PASSWORD];
    const server: Slapd = {
      url,
      ...(tlsPort ? { ldapsUrl: `ldaps://127.0.0.1:${tlsPort}`, tlsPort } : {}),
      ...(ca ? { caFile: ca.certFile, ca } : {}),
      port,
      baseDn: SLAPD_BASE_DN,
      adminDn: SLAPD_ADMIN_DN,
      adminPassword: SLAPD_ADMIN_PASSWORD,
      dir,
      ldapiPath,
      pid: child.pid as number,
      async add(ldif: string) {
        await run(findBinary('ldapadd') ?? 'ldapadd', ldapArgs, ldif);
      },
      async modify(ldif: string) {
        await run(findBinary('ldapmodify') ?? 'ldapmodify', ldapArgs, ldif);
      },
      async client() {
        const c = new Client({ url, timeout: 10000 });
        await c.bind(SLAPD_ADMIN_DN, SLAPD_ADMIN_PASSWORD);
        return c;
      },
      async stop() {
        await stopChild(child);
        if (process.env.IDSYNC_KEEP_TEST_DIRS !== '1') rmSync(dir, { recursive: true, force: true });
      },
    };
    return server;
  }
  rmSync(dir, { recursive: true, force: true });
  throw lastErr instanceof Error ? lastErr : new Error(String(lastErr));
}

/** An LDAP connector's configuration for this slapd, bound as its admin (pages of 1,000 unless `extra` says). */
export function ldapConfigFor(s: Pick<Slapd, 'url' | 'adminDn' | 'baseDn'>, extra: Partial<LdapConnectorConfig & { type: 'ldap' }> = {}): LdapConnectorConfig & { type: 'ldap' } {
  return {
    type: 'ldap',
    name: 'openldap',
    url: s.url,
    bindDn: s.adminDn,
    baseDn: s.baseDn,
    tls: { startTls: false, insecureSkipVerify: false },
    scope: { include: [], exclude: [] },
    pageSize: 1000,
    timeoutMs: 5000,
    ...extra,
  };
}
