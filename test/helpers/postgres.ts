/**
 * A private PostgreSQL 15 cluster for one test process: initdb in a temp dir, the postmaster as a
 * foreground child on 127.0.0.1 and a free port (its unix socket in the temp dir too), password
 * (scram-sha-256) auth for a test role, and a fresh database per test. ~1 s to start; stopped and
 * removed by `stop()`, and SIGKILLed if the test process ends without it.
 *
 *   const pg = await startPostgres();            // or: if (!requirePostgres(t)) return;
 *   const url = await pg.createDatabase();        // postgres://idsync_test:…@127.0.0.1:port/db_1
 *   after(() => pg.stop());
 *
 * initdb refuses to run as root: as root the cluster runs as the `postgres` system user (Debian's
 * postgresql-15 package creates it); otherwise as the current user. The binaries are in
 * /usr/lib/postgresql/15/bin (not on PATH), or $IDSYNC_PG_BIN.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, chownSync, constants, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import pg from 'pg';
import { killOnExit } from './children.js';
import { integrationRequired } from './integration.js';
import { freePort } from './slapd.js';

export const PG_TEST_ROLE = 'idsync_test';

export function pgBinDir(): string {
  return process.env.IDSYNC_PG_BIN ?? '/usr/lib/postgresql/15/bin';
}

/** Why PostgreSQL cannot run here, or undefined when it can. */
export function postgresUnavailable(): string | undefined {
  for (const b of ['initdb', 'postgres']) {
    try {
      accessSync(join(pgBinDir(), b), constants.X_OK);
    } catch {
      return `PostgreSQL 15 is not installed (${join(pgBinDir(), b)} missing; apt-get install postgresql-15)`;
    }
  }
  if (process.getuid?.() === 0 && systemUser('postgres') === undefined) return 'running as root and there is no `postgres` system user to run the cluster as';
  return undefined;
}

/** For `describe(name, { skip: skipUnlessPostgres() }, …)`; throws under IDSYNC_REQUIRE_INTEGRATION=1. */
export function skipUnlessPostgres(): string | false {
  const reason = postgresUnavailable();
  if (!reason) return false;
  if (integrationRequired()) throw new Error(`IDSYNC_REQUIRE_INTEGRATION=1 but ${reason}: install it (see docs/cloud-directory.md) or unset the variable`);
  return reason;
}

/** Inside a test: true when PostgreSQL is available; else skips the test (or fails it in CI). */
export function requirePostgres(t: Pick<TestContext, 'skip'>): boolean {
  const reason = skipUnlessPostgres();
  if (reason === false) return true;
  t.skip(reason);
  return false;
}

function systemUser(name: string): { uid: number; gid: number } | undefined {
  try {
    const passwd = execFileSyncText('getent', ['passwd', name]);
    const f = passwd.trim().split(':');
    return { uid: Number(f[2]), gid: Number(f[3]) };
  } catch {
    return undefined;
  }
}

// Synchronous, so that postgresUnavailable() can be used in describe() options.
function execFileSyncText(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

function run(cmd: string, args: string[], as: { uid: number; gid: number } | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { ...(as ?? {}), encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/** Whether another user can reach `dir` (every folder on the way lets others through). */
function traversable(dir: string): boolean {
  for (let d = dir; ; d = dirname(d)) {
    try {
      if ((statSync(d).mode & 0o001) === 0) return false;
    } catch {
      return false;
    }
    if (dirname(d) === d) return true;
  }
}

/** Where the cluster's folder goes: the temp dir, unless the `postgres` user cannot reach it there. */
function clusterBase(asOther: boolean): string {
  if (!asOther) return tmpdir();
  const base = [tmpdir(), '/var/tmp', '/dev/shm'].find(traversable);
  if (!base) throw new Error(`the postgres user cannot reach ${tmpdir()}, /var/tmp or /dev/shm: set TMPDIR to a folder others may traverse`);
  return base;
}

/**
 * Makes files the server must read (a TLS key and certificate) its own: as root the cluster runs
 * as `postgres`, and PostgreSQL refuses a key others can read. Their folder must let it through.
 */
export function giveToPostgres(files: string[]): void {
  const as = process.getuid?.() === 0 ? systemUser('postgres') : undefined;
  for (const f of files) {
    if (as) chownSync(f, as.uid, as.gid);
    chmodSync(f, 0o600);
  }
}

/** A new folder the server can read files in (the temp dir may be closed to other users); caller removes it. */
export function postgresReadableDir(): string {
  const asOther = process.getuid?.() === 0 && systemUser('postgres') !== undefined;
  const dir = mkdtempSync(join(clusterBase(asOther), 'idsync-pg-files-'));
  chmodSync(dir, 0o711);
  return dir;
}

export interface TestPostgres {
  host: string;
  port: number;
  /** The unix socket directory. */
  socketDir: string;
  /** The postmaster's process id (benches add up its backends' CPU). */
  pid: number | undefined;
  role: string;
  password: string;
  /** A new empty database owned by the test role; returns its postgres:// URL (with the password). */
  createDatabase(): Promise<string>;
  /** A superuser client (caller ends it), for assertions and fault injection. */
  admin(database?: string): Promise<pg.Client>;
  stop(): Promise<void>;
}

/** `args`: more server arguments (e.g. `-c ssl=on`), after the defaults. */
export async function startPostgres(options: { detached?: boolean; args?: string[] } = {}): Promise<TestPostgres> {
  const reason = postgresUnavailable();
  if (reason) throw new Error(reason);
  const as = process.getuid?.() === 0 ? systemUser('postgres') : undefined;
  const dir = mkdtempSync(join(clusterBase(as !== undefined), 'idsync-pg-'));
  const dataDir = join(dir, 'data');
  const superPassword = `su-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
  const password = `pw-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
  writeFileSync(join(dir, 'pwfile'), superPassword + '\n', { mode: 0o600 });
  if (as) chownSync(dir, as.uid, as.gid);
  if (as) chownSync(join(dir, 'pwfile'), as.uid, as.gid);
  let child: ChildProcess | undefined;
  try {
    // C collation: byte-order text comparison, as SQLite's; UTF-8 so lower() folds beyond ASCII.
    await run(join(pgBinDir(), 'initdb'), ['-D', dataDir, '-U', 'postgres', '--pwfile', join(dir, 'pwfile'), '-A', 'scram-sha-256', '-E', 'UTF8', '--locale=C.UTF-8', '--lc-collate=C', '--no-sync'], as);
    const port = await freePort();
    child = spawn(
      join(pgBinDir(), 'postgres'),
      ['-D', dataDir, '-h', '127.0.0.1', '-p', String(port), '-k', dir, '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200', '-c', 'shared_buffers=32MB', ...(options.args ?? [])],
      { ...(as ?? {}), stdio: ['ignore', 'ignore', 'pipe'] },
    );
    killOnExit(child);
    if (options.detached) {
      child.unref();
      (child.stderr as unknown as { unref?: () => void }).unref?.();
    }
    let log = '';
    child.stderr!.on('data', (d: Buffer) => {
      log = (log + d.toString()).slice(-4000);
    });
    const exited = new Promise<never>((_, reject) => child!.once('exit', (code) => reject(new Error(`postgres exited (${String(code)}): ${log}`))));
    exited.catch(() => undefined);
    const superConfig = { host: '127.0.0.1', port, user: 'postgres', password: superPassword, database: 'postgres' };
    const deadline = Date.now() + 60_000;
    for (;;) {
      const c = new pg.Client(superConfig);
      try {
        await Promise.race([c.connect(), exited]);
        await c.query(`CREATE ROLE ${PG_TEST_ROLE} LOGIN CREATEDB PASSWORD '${password}'`);
        await c.end();
        break;
      } catch (err) {
        await c.end().catch(() => undefined);
        if (child.exitCode !== null || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    let n = 0;
    const started = child;
    const pgHandle: TestPostgres = {
      host: '127.0.0.1',
      port,
      socketDir: dir,
      pid: started.pid,
      role: PG_TEST_ROLE,
      password,
      createDatabase: async () => {
        const name = `idsync_${process.pid}_${++n}`;
        const c = new pg.Client(superConfig);
        await c.connect();
        try {
          await c.query(`CREATE DATABASE ${name} OWNER ${PG_TEST_ROLE}`);
        } finally {
          await c.end();
        }
        return `postgres://${PG_TEST_ROLE}:${encodeURIComponent(password)}@127.0.0.1:${port}/${name}`;
      },
      admin: async (database = 'postgres') => {
        const c = new pg.Client({ ...superConfig, database });
        await c.connect();
        return c;
      },
      stop: async () => {
        if (started.exitCode === null && started.signalCode === null) {
          const gone = new Promise<void>((r) => started.once('exit', () => r()));
          started.kill('SIGINT'); // fast shutdown
          const timer = setTimeout(() => started.kill('SIGKILL'), 20_000);
          await gone;
          clearTimeout(timer);
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
    return pgHandle;
  } catch (err) {
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

let shared: Promise<TestPostgres> | undefined;

/** One cluster per test process, started on first use and stopped when the process exits. */
export function sharedPostgres(): Promise<TestPostgres> {
  if (!shared) {
    // The shared cluster must not keep the test process alive: it is killed when the process exits.
    shared = startPostgres({ detached: true });
    shared.then((p) => process.once('exit', () => rmSync(p.socketDir, { recursive: true, force: true })), () => undefined);
  }
  return shared;
}
