/**
 * `idsync service start|stop|restart|status|install`: the sync service in the background
 * (pid file + log in the data directory), or as a systemd unit. See docs/service.md.
 */
import { Option, type Command } from 'commander';
import { DEFAULT_SYNC_INTERVAL } from '../../config/schema.js';
import { describeCredential, describeOutbox, describePasswordActivity, type CredentialStatus, type OutboxStatus, type PasswordActivity } from '../../status/index.js';
import { IdsyncError } from '../../core/errors.js';
import { serviceStatus, startDaemon, stopDaemon, type ServiceStatus, type StartResult, type StopResult } from '../../service/daemon.js';
import type { HaStatus } from '../../service/ha/leadership.js';
import { DEFAULT_HOST, DEFAULT_PORT } from '../../service/defaults.js';
import { DEFAULT_CLOUD_DATA, DEFAULT_CLOUD_USER, DEFAULT_SERVICE_USER, installRendered, renderCloudUnit, renderSyncUnit, type RenderedUnit } from '../../service/systemd.js';
import { parseDuration } from '../../config/duration.js';
import { loadFor } from '../context.js';
import { LOG_LEVELS } from '../options.js';
import { EXIT } from '../exit-codes.js';
import { printJson, println } from '../output.js';
import type { RegisterCommand } from '../context.js';

const DEFAULT_STOP_TIMEOUT = '35s';

function parsePort(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw new IdsyncError('CONFIG_INVALID', `"${text}" is not a port number`, { hint: 'Use 1–65535, or 0 for a free port.' });
  return n;
}

/** "3 min ago" style age of an ISO time. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 48 * 3600) return `${Math.round(s / 360) / 10} h ago`;
  return `${Math.round(s / 8640) / 10} days ago`;
}

interface StartCliOptions {
  interval?: string;
  port: string;
  host: string;
  logLevel?: string;
  wait: string;
  json?: boolean;
}

async function doStart(cmd: Command, opts: StartCliOptions): Promise<StartResult> {
  const loaded = loadFor(cmd);
  return startDaemon(loaded, {
    // Not given: the configuration's sync.interval (a flag overrides the file, a default does not).
    intervalMs: parseDuration(opts.interval ?? loaded.config.sync.interval),
    port: parsePort(opts.port),
    host: opts.host,
    timeoutMs: parseDuration(opts.wait),
    ...(opts.logLevel ? { logLevel: opts.logLevel } : {}),
  });
}

function printStarted(r: StartResult): void {
  if (r.staleRemoved) println('removed a stale pid file (its process was gone)');
  println(`idsync service started: pid ${r.pid}, ${r.url}`);
  println(`  log: ${r.logFile}`);
  println('  status: idsync service status    stop: idsync service stop');
}

async function doStop(cmd: Command, timeout: string): Promise<StopResult> {
  const loaded = loadFor(cmd);
  return stopDaemon(loaded.dataDir, { timeoutMs: parseDuration(timeout) });
}

function printStopped(r: StopResult, timeout: string): void {
  if (!r.wasRunning) {
    println(`idsync service is not running${r.staleRemoved ? ' (removed a stale pid file)' : ''}`);
    return;
  }
  if (r.killed) println(`idsync service (pid ${r.pid}) did not stop within ${timeout}: killed (SIGKILL); an interrupted cycle is marked so at the next start`);
  else println(`idsync service stopped (pid ${r.pid}, ${(r.elapsedMs / 1000).toFixed(1)} s)`);
}

function credLine(c: CredentialStatus): string {
  return `  ${c.name.padEnd(16)} ${describeCredential(c, (t) => ago(t))}`;
}

const agoText = (iso: string) => ago(iso);

/** Password sync in one line, from the status module's answers (the same words as `doctor`). */
function passwordLine(outbox: OutboxStatus, activity: PasswordActivity): string {
  return `password sync: ${describePasswordActivity(activity, agoText)}; outbox ${describeOutbox(outbox)}`;
}

/** Several nodes on one PostgreSQL (docs/ha.md): this node's role, the lease, and every node. */
function printHa(ha: HaStatus): void {
  const lease = ha.leader;
  println(
    `role: ${ha.role} (node ${ha.node}${ha.token !== null ? `, fencing token ${ha.token}` : ''})` +
      (lease ? `; leader: ${lease.node} (token ${lease.token}, lease ${lease.live ? 'expires' : 'expired'} ${lease.expiresAt})` : '; leader: none yet'),
  );
  for (const n of ha.nodes) {
    const silent = n.silentSeconds * 1000 > 3 * ha.leaseTtlMs;
    println(`  ${n.node.padEnd(16)} ${n.role.padEnd(8)} pid ${n.pid}${n.url ? ` ${n.url}` : ''}${silent ? ` — silent for ${n.silentSeconds} s` : ''}`);
  }
}

export function printStatus(s: ServiceStatus): void {
  if (s.staleRemoved) println('removed a stale pid file (its process was gone)');
  if (!s.running) {
    println('idsync service: not running (start it with `idsync service start`, or run `idsync serve`)');
  } else {
    println(`idsync service: running (pid ${s.pid}, ${s.url}${s.startedAt ? `, started ${ago(s.startedAt)}` : ''})`);
  }
  const h = s.health;
  if (h) {
    println(`health: ${h.status}${h.ready ? '' : ' (not ready)'}`);
    for (const d of h.degraded) println(`  ! ${d.check}: ${d.reason}`);
    for (const r of h.notReady) if (!h.degraded.some((d) => d.reason === r)) println(`  - not ready: ${r}`);
    const last = h.cycle.last;
    println(
      `last cycle: ${last ? `run ${last.id} (${last.profile}) ${last.status}, ended ${ago(last.endedAt)}${last.error ? ` — ${last.error.code}: ${last.error.message}` : ''}` : 'none yet'}` +
        (h.cycle.inProgress ? ' (a cycle is running now)' : h.cycle.nextAt ? `; next at ${h.cycle.nextAt}` : ''),
    );
    if (h.ha) printHa(h.ha);
    const pw = h.passwords;
    println(
      passwordLine(
        { depth: pw.outboxDepth, deliverable: pw.deliverable, waitingForExport: pw.waitingForExport, oldestQueuedAt: pw.oldestQueuedAt, lastError: null, attempts: null },
        { heartbeatAt: pw.heartbeatAt, lastBatchAt: pw.lastBatchAt, lastActivityAt: pw.lastActivityAt, lastActivity: pw.lastActivityAt === null ? null : pw.lastActivityAt === pw.heartbeatAt ? 'heartbeat' : 'batch' },
      ),
    );
    println('credentials:');
    if (h.credentials.length === 0) println('  none stored (idsync credentials set <connector>)');
    for (const c of h.credentials) println(credLine(c));
    return;
  }
  if (s.unreachable) println(`health: unknown — ${s.unreachable}`);
  const o = s.offline;
  if (!o) return;
  println('from the database:');
  const r = o.lastRun;
  println(`  last cycle: ${r ? `run ${r.id} (${r.profile}) ${r.status}, ended ${ago(r.endedAt)}${r.error ? ` — ${r.error.code}: ${r.error.message}` : ''}` : 'none yet'}`);
  println(`  ${passwordLine(o.outbox, o.passwordActivity)}`);
  println('  credentials:');
  if (o.credentials.length === 0) println('    none stored (idsync credentials set <connector>)');
  for (const c of o.credentials) println('  ' + credLine(c));
}

export const registerServiceCommands: RegisterCommand = (program) => {
  const service = program
    .command('service')
    .description('Run the sync service in the background (start, stop, restart, status) or install it as a systemd unit')
    .addHelpText(
      'after',
      `
The background service is \`idsync serve\` detached, with <dataDir>/idsync.pid and its log in <dataDir>/idsync.log.
On a systemd host prefer \`idsync service install\` (then systemctl manages it).

Exit codes of \`service status\`: 0 running and healthy, 1 degraded or not running.`,
    );

  const startOptions = (c: Command) =>
    c
      .option('--interval <duration>', `time between delta sync cycles (e.g. 30s, 5m, 1h); default: sync.interval in the configuration (${DEFAULT_SYNC_INTERVAL})`)
      .option('--port <n>', 'port of the service\'s HTTP endpoints (0 = any free port)', String(DEFAULT_PORT))
      .option('--host <address>', 'address to listen on (loopback only without TLS)', DEFAULT_HOST)
      .addOption(new Option('--log-level <level>', 'log level of the service log').choices(LOG_LEVELS))
      .option('--wait <duration>', 'how long to wait for the service to answer /healthz', '20s');

  startOptions(service.command('start').description('Start `idsync serve` in the background; waits until it answers /healthz')).action(
    async (opts: StartCliOptions, cmd: Command) => {
      printStarted(await doStart(cmd, opts));
    },
  );

  service
    .command('stop')
    .description('Stop the background service: SIGTERM, let it drain, SIGKILL after --timeout')
    .option('--timeout <duration>', 'how long to wait before SIGKILL', DEFAULT_STOP_TIMEOUT)
    .action(async (opts: { timeout: string }, cmd: Command) => {
      printStopped(await doStop(cmd, opts.timeout), opts.timeout);
    });

  startOptions(service.command('restart').description('Stop the background service (if running), then start it'))
    .option('--timeout <duration>', 'how long to wait for the stop before SIGKILL', DEFAULT_STOP_TIMEOUT)
    .action(async (opts: StartCliOptions & { timeout: string }, cmd: Command) => {
      printStopped(await doStop(cmd, opts.timeout), opts.timeout);
      printStarted(await doStart(cmd, opts));
    });

  service
    .command('status')
    .description('Whether the service runs, its last cycle, password sync heartbeat and outbox, credential state')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const s = await serviceStatus(loadFor(cmd));
      if (opts.json) printJson(s);
      else printStatus(s);
      process.exitCode = s.running && s.healthy ? EXIT.OK : EXIT.FAILED;
    });

  service
    .command('install')
    .description('Write a systemd unit that runs `idsync serve` as a dedicated user (or, with --cloud, `idsync cloud serve`); does not call systemctl')
    .option('--user', 'a user unit in ~/.config/systemd/user (systemctl --user)')
    .option('--output <file>', 'write the unit here instead (- prints it)')
    .option('--run-as <user>', `User= of a system unit (default ${DEFAULT_SERVICE_USER}; ${DEFAULT_CLOUD_USER} with --cloud)`)
    .option('--create-user', 'also write a sysusers.d entry that creates that system user (applied by systemd-sysusers)')
    .option('--exec <path>', 'the idsync executable the unit runs (default: `idsync` on PATH)')
    .option('--interval <duration>', 'passed to `serve --interval` (default: sync.interval in the configuration)')
    .option('--port <n>', 'passed to `serve --port` (with --cloud: `cloud serve --port`, default 8080)')
    .option('--cloud', 'write idsync-cloud.service for `idsync cloud serve` instead (no idsync.yaml needed)')
    .option('--data <dir>', `with --cloud: the cloud's data directory (default ${DEFAULT_CLOUD_DATA})`)
    .option('--host <address>', 'with --cloud: the address it listens on (default 127.0.0.1; plain HTTP elsewhere gets a warning)')
    .option('--public-url <url>', 'with --cloud: the https:// URL of the TLS proxy in front of it')
    .addHelpText(
      'after',
      `
The unit runs the installed \`idsync\` command (not this checkout's files) as a system user, with its
data in StateDirectory= (/var/lib/...) and its configuration in ConfigurationDirectory= (/etc/...).
Files under /tmp are refused (the unit has its own private /tmp).

Examples:
  sudo idsync -c /etc/idsync/idsync.yaml service install --create-user
  sudo idsync service install --cloud --create-user --data /var/lib/idsync-cloud
  idsync -c /etc/idsync/idsync.yaml service install --output -     # print it`,
    )
    .action(
      async (
        opts: { user?: boolean; output?: string; runAs?: string; createUser?: boolean; exec?: string; interval?: string; port?: string; cloud?: boolean; data?: string; host?: string; publicUrl?: string },
        cmd: Command,
      ) => {
        const exec = opts.exec ? { exec: opts.exec } : {};
        let rendered: RenderedUnit;
        let home = '-';
        if (opts.cloud) {
          if (opts.user || opts.interval) throw new IdsyncError('CONFIG_INVALID', '--cloud writes a system unit for `idsync cloud serve`: --user and --interval do not apply', { hint: 'Drop them.' });
          rendered = renderCloudUnit({
            ...exec,
            ...(opts.runAs ? { runAs: opts.runAs } : {}),
            ...(opts.data ? { data: opts.data } : {}),
            ...(opts.host ? { host: opts.host } : {}),
            ...(opts.port ? { port: parsePort(opts.port) } : {}),
            ...(opts.publicUrl ? { publicUrl: opts.publicUrl } : {}),
          });
          home = opts.data ?? DEFAULT_CLOUD_DATA;
        } else {
          if (opts.data || opts.host || opts.publicUrl) throw new IdsyncError('CONFIG_INVALID', '--data, --host and --public-url apply to --cloud only', { hint: 'The sync service takes its data directory from idsync.yaml.' });
          const loaded = loadFor(cmd);
          if (opts.interval) parseDuration(opts.interval);
          if (opts.port) parsePort(opts.port);
          const serveArgs = [...(opts.interval ? ['--interval', opts.interval] : []), ...(opts.port ? ['--port', opts.port] : [])];
          rendered = renderSyncUnit(loaded, { user: !!opts.user, ...(opts.runAs ? { runAs: opts.runAs } : {}), ...exec, serveArgs });
          home = loaded.dataDir.startsWith('/var/lib/') ? loaded.dataDir : '-';
        }
        for (const w of rendered.warnings) process.stderr.write(`warning: ${w}\n`);
        if (opts.output === '-') {
          process.stdout.write(rendered.unit);
          return;
        }
        const r = installRendered(rendered, { ...(opts.user ? { user: true } : {}), ...(opts.output ? { output: opts.output } : {}), ...(opts.createUser ? { createUser: true } : {}), home });
        for (const w of r.warnings.slice(rendered.warnings.length)) process.stderr.write(`warning: ${w}\n`);
        println(`wrote ${r.file}${r.sysusersFile ? ` and ${r.sysusersFile}` : ''}`);
        println('next steps:');
        for (const s of r.nextSteps) println(`  ${s}`);
      },
    );
};
