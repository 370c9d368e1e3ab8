/**
 * `idsync service start|stop|restart|status`: `idsync serve` as a background process without
 * systemd (for systemd, see systemd.ts and `idsync service install`).
 *
 *   <dataDir>/idsync.pid   JSON {pid, port, host, intervalMs, startedAt, config} of the running service
 *   <dataDir>/idsync.log   the service's stdout and stderr (JSON log), appended
 *
 * A pid file whose process is gone (or is no longer an idsync service: pid reuse) is stale and is
 * removed by whoever finds it.
 */
import { credentialStatus, lastFinishedRun, outboxStatus, passwordActivity, type CredentialStatus, type OutboxStatus, type PasswordActivity } from '../status/index.js';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync, fstatSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import type { LoadedConfig } from '../config/load.js';
import { IdsyncError } from '../core/errors.js';
import { openContext } from '../engine/context.js';
import type { RunRecord } from '../engine/runs.js';
import type { HealthReport } from './health.js';
import { DEFAULT_HOST, DEFAULT_INTERVAL_MS, DEFAULT_PORT, DEFAULT_STOP_TIMEOUT_MS } from './defaults.js';
import { NODE_FLAGS } from './node-flags.js';

export const PID_FILE = 'idsync.pid';
export const LOG_FILE = 'idsync.log';
export const DEFAULT_START_TIMEOUT_MS = 20_000;

/** The CLI entry spawned for `serve` (bin/idsync.js: same path from src/ and from dist/). */
export const DEFAULT_ENTRY = fileURLToPath(new URL('../../bin/idsync.js', import.meta.url));

export interface PidInfo {
  pid: number;
  port: number;
  host: string;
  intervalMs: number;
  startedAt: string;
  /** Absolute configuration file the service was started with. */
  config: string;
}

export const pidFilePath = (dataDir: string): string => path.join(dataDir, PID_FILE);
export const logFilePath = (dataDir: string): string => path.join(dataDir, LOG_FILE);

/** Whether `pid` is a live process that looks like an idsync service (Linux: /proc cmdline). */
export function isServiceProcess(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // A zombie has an empty cmdline; a reused pid runs something else.
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmdline.includes('serve');
  } catch {
    return true; // no /proc (not Linux): trust kill(0)
  }
}

export function readPidFile(dataDir: string): PidInfo | undefined {
  let text: string;
  try {
    text = readFileSync(pidFilePath(dataDir), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const v = JSON.parse(text) as Partial<PidInfo>;
    if (typeof v.pid !== 'number' || typeof v.port !== 'number') return undefined;
    return {
      pid: v.pid,
      port: v.port,
      host: v.host ?? DEFAULT_HOST,
      intervalMs: v.intervalMs ?? DEFAULT_INTERVAL_MS,
      startedAt: v.startedAt ?? '',
      config: v.config ?? '',
    };
  } catch {
    // A bare pid (hand-written or another tool's format).
    const pid = Number(text.trim());
    return Number.isInteger(pid) && pid > 0 ? { pid, port: DEFAULT_PORT, host: DEFAULT_HOST, intervalMs: DEFAULT_INTERVAL_MS, startedAt: '', config: '' } : undefined;
  }
}

export interface DaemonState {
  running: boolean;
  info?: PidInfo;
  /** A pid file was found whose process is gone; it was removed. */
  staleRemoved?: PidInfo | true;
}

/** The service's state from its pid file; removes a stale pid file. */
export function daemonState(dataDir: string): DaemonState {
  const file = pidFilePath(dataDir);
  if (!existsSync(file)) return { running: false };
  const info = readPidFile(dataDir);
  if (info && isServiceProcess(info.pid)) return { running: true, info };
  rmSync(file, { force: true });
  return { running: false, staleRemoved: info ?? true };
}

/** The last `maxBytes` of the service log (for a start that failed). */
export function logTail(dataDir: string, maxLines = 20, maxBytes = 16 * 1024): string {
  let fd: number;
  try {
    fd = openSync(logFilePath(dataDir), 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, maxBytes);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    return buf.toString('utf8').split('\n').filter(Boolean).slice(-maxLines).join('\n');
  } finally {
    closeSync(fd);
  }
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function baseUrl(info: Pick<PidInfo, 'host' | 'port'>): string {
  const host = info.host === '0.0.0.0' ? '127.0.0.1' : info.host.includes(':') ? `[${info.host}]` : info.host;
  return `http://${host}:${info.port}`;
}

async function getJson(url: string, timeoutMs: number): Promise<{ status: number; body: unknown } | undefined> {
  try {
    const res = await request(url, { headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    const text = await res.body.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: res.statusCode, body };
  } catch {
    return undefined;
  }
}

export interface StartOptions {
  intervalMs?: number;
  /** Port of the service (default 7443; 0 picks a free one now). */
  port?: number;
  host?: string;
  logLevel?: string;
  /** How long to wait for /healthz (default 20 s). */
  timeoutMs?: number;
  /**
   * Node arguments that run the idsync CLI, before its own arguments (default [bin/idsync.js]).
   * Tests run the TypeScript sources through tsx with this.
   */
  nodeArgs?: string[];
}

export interface StartResult {
  pid: number;
  port: number;
  url: string;
  logFile: string;
  pidFile: string;
  /** A stale pid file was found and removed first. */
  staleRemoved: boolean;
}

/** Starts `idsync serve` detached, writes the pid file, waits until /healthz answers. */
export async function startDaemon(loaded: LoadedConfig, opts: StartOptions = {}): Promise<StartResult> {
  const dataDir = loaded.dataDir;
  const state = daemonState(dataDir);
  if (state.running) {
    throw new IdsyncError('RUN_IN_PROGRESS', `the idsync service is already running (pid ${state.info!.pid}, ${baseUrl(state.info!)})`, {
      hint: 'Check it with `idsync service status`; restart it with `idsync service restart`.',
    });
  }
  mkdirSync(dataDir, { recursive: true });
  const host = opts.host ?? DEFAULT_HOST;
  const port = opts.port === 0 ? await freePort(host) : (opts.port ?? DEFAULT_PORT);
  const intervalMs = opts.intervalMs ?? DEFAULT_INTERVAL_MS;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const logFile = logFilePath(dataDir);
  const args = [
    ...(opts.nodeArgs ?? [...NODE_FLAGS, DEFAULT_ENTRY]),
    '-c',
    loaded.file,
    'serve',
    '--interval',
    `${Math.round(intervalMs / 1000)}s`,
    '--host',
    host,
    '--port',
    String(port),
    ...(opts.logLevel ? ['--log-level', opts.logLevel] : []),
  ];
  const out = openSync(logFile, 'a', 0o600);
  const logStart = fstatSync(out).size;
  let child;
  try {
    child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', out, out], cwd: path.dirname(loaded.file), env: process.env });
  } finally {
    closeSync(out);
  }
  const pid = child.pid;
  if (pid === undefined) {
    throw new IdsyncError('INTERNAL', `could not start ${process.execPath}`, { hint: `See ${logFile}.` });
  }
  let exited: number | string | null | undefined;
  child.once('exit', (code, signal) => (exited = code ?? signal));
  child.unref();
  const info: PidInfo = { pid, port, host, intervalMs, startedAt: new Date().toISOString(), config: loaded.file };
  writeFileSync(pidFilePath(dataDir), JSON.stringify(info) + '\n', { mode: 0o644 });

  const url = baseUrl(info);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && exited === undefined) {
    const r = await getJson(`${url}/healthz`, 1000);
    if (r?.status === 200 && (r.body as { status?: string } | undefined)?.status === 'alive' && isServiceProcess(pid)) {
      return { pid, port, url, logFile, pidFile: pidFilePath(dataDir), staleRemoved: state.staleRemoved !== undefined };
    }
    await sleep(150);
  }
  // Failed: do not leave a half-started process or a pid file behind.
  if (exited === undefined) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  rmSync(pidFilePath(dataDir), { force: true });
  const tail = newLogText(logFile, logStart) || logTail(dataDir);
  throw new IdsyncError(
    'INTERNAL',
    exited !== undefined
      ? `the idsync service exited during start (${exited}); its log says:\n${tail}`
      : `the idsync service did not answer ${url}/healthz within ${Math.round(timeoutMs / 1000)} s; it was stopped. Its log says:\n${tail}`,
    { hint: `Read ${logFile}, fix the cause, then run \`idsync service start\` again (\`idsync serve\` runs it in the foreground).` },
  );
}

function newLogText(file: string, from: number): string {
  try {
    const buf = readFileSync(file);
    return buf.subarray(from).toString('utf8').split('\n').filter(Boolean).slice(-20).join('\n');
  } catch {
    return '';
  }
}

export interface StopResult {
  wasRunning: boolean;
  pid?: number;
  /** The service did not exit within the timeout and was killed (SIGKILL). */
  killed: boolean;
  staleRemoved: boolean;
  elapsedMs: number;
}

/** SIGTERM, wait up to timeoutMs, SIGKILL if still alive; removes the pid file. Idempotent. */
export async function stopDaemon(dataDir: string, opts: { timeoutMs?: number } = {}): Promise<StopResult> {
  const t0 = Date.now();
  const state = daemonState(dataDir);
  if (!state.running) return { wasRunning: false, killed: false, staleRemoved: state.staleRemoved !== undefined, elapsedMs: 0 };
  const pid = state.info!.pid;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS + 5_000;
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      /* already gone */
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (isServiceProcess(pid) && Date.now() < deadline) await sleep(100);
  let killed = false;
  if (isServiceProcess(pid)) {
    killed = true;
    signal('SIGKILL');
    const hard = Date.now() + 5_000;
    while (isServiceProcess(pid) && Date.now() < hard) await sleep(50);
  }
  // Only remove the pid file if it is still ours (a concurrent start may have written a new one).
  if (readPidFile(dataDir)?.pid === pid) rmSync(pidFilePath(dataDir), { force: true });
  return { wasRunning: true, pid, killed, staleRemoved: false, elapsedMs: Date.now() - t0 };
}

// -------------------------------------------------------------------------------------------------
// Status
// -------------------------------------------------------------------------------------------------

export interface OfflineStatus {
  lastRun: Pick<RunRecord, 'id' | 'profile' | 'status' | 'startedAt' | 'endedAt' | 'error'> | null;
  outboxDepth: number;
  oldestQueuedAt: string | null;
  heartbeatAt: string | null;
  /** The same answers the service's /status and `doctor` give (src/status). */
  outbox: OutboxStatus;
  passwordActivity: PasswordActivity;
  credentials: CredentialStatus[];
}

export interface ServiceStatus {
  running: boolean;
  pid: number | null;
  url: string | null;
  startedAt: string | null;
  /** running and the service's /status says ok. */
  healthy: boolean;
  /** The service's own report (GET /status) when it is running and answered. */
  health: HealthReport | null;
  /** Why the service answered nothing useful, when running. */
  unreachable: string | null;
  /** What the database knows (when the service is not running, or did not answer). */
  offline: OfflineStatus | null;
  staleRemoved: boolean;
}

/** What the database says, without the service: last run, outbox, heartbeat, credentials. */
export function offlineStatus(loaded: LoadedConfig): OfflineStatus {
  const ctx = openContext(loaded, { readOnly: true });
  try {
    const last = lastFinishedRun(ctx.db, 0);
    const outbox = outboxStatus(ctx.db);
    const activity = passwordActivity(ctx.events);
    return {
      lastRun: last ? { id: last.id, profile: last.profile, status: last.status, startedAt: last.startedAt, endedAt: last.endedAt, error: last.error } : null,
      outboxDepth: outbox.depth,
      oldestQueuedAt: outbox.oldestQueuedAt,
      heartbeatAt: activity.heartbeatAt,
      outbox,
      passwordActivity: activity,
      credentials: credentialStatus(ctx.db, ctx.credentials.list()),
    };
  } finally {
    ctx.close();
  }
}

export async function serviceStatus(loaded: LoadedConfig, opts: { timeoutMs?: number } = {}): Promise<ServiceStatus> {
  const state = daemonState(loaded.dataDir);
  const staleRemoved = state.staleRemoved !== undefined;
  if (!state.running) {
    return { running: false, pid: null, url: null, startedAt: null, healthy: false, health: null, unreachable: null, offline: offlineStatus(loaded), staleRemoved };
  }
  const info = state.info!;
  const url = baseUrl(info);
  const r = await getJson(`${url}/status`, opts.timeoutMs ?? 5000);
  const health = r?.status === 200 && r.body && typeof r.body === 'object' ? (r.body as HealthReport) : null;
  return {
    running: true,
    pid: info.pid,
    url,
    startedAt: info.startedAt || null,
    healthy: health?.status === 'ok',
    health,
    unreachable: health ? null : r ? `GET ${url}/status answered HTTP ${r.status}` : `no answer from ${url}/status`,
    offline: health ? null : offlineStatus(loaded),
    staleRemoved,
  };
}
