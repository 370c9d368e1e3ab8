/**
 * `idsync serve`: the sync service in the foreground (systemd runs it as `Type=simple`).
 * Runs until SIGINT/SIGTERM; exits 0 after a clean stop.
 */
import { Option, type Command } from 'commander';
import { parseDuration } from '../../config/duration.js';
import { DEFAULT_SYNC_INTERVAL } from '../../config/schema.js';
import { IdsyncError } from '../../core/errors.js';
import { openContext } from '../../engine/context.js';
import { DEFAULT_HOST, DEFAULT_PORT, DEFAULT_STOP_TIMEOUT_MS } from '../../service/defaults.js';
import { SyncService } from '../../service/service.js';
import { loadFor } from '../context.js';
import { LOG_LEVELS } from '../options.js';
import { EXIT } from '../exit-codes.js';
import { println } from '../output.js';
import { StopSignals } from '../signals.js';
import type { RegisterCommand } from '../context.js';

function parsePort(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw new IdsyncError('CONFIG_INVALID', `"${text}" is not a port number`, { hint: 'Use 1–65535, or 0 for a free port.' });
  return n;
}

interface ServeOptions {
  interval?: string;
  host: string;
  port: string;
  tlsCert?: string;
  tlsKey?: string;
  logLevel: string;
}

export const registerServeCommands: RegisterCommand = (program) => {
  program
    .command('serve')
    .description('Run the sync service in the foreground: scheduled sync cycles, password hash delivery, health and metrics endpoints')
    .option('--interval <duration>', `time between delta sync cycles (e.g. 30s, 5m, 1h); default: sync.interval in the configuration (${DEFAULT_SYNC_INTERVAL})`)
    .option('--host <address>', 'address to listen on; without TLS only loopback is allowed', DEFAULT_HOST)
    .option('--port <n>', 'port to listen on (0 = any free port)', String(DEFAULT_PORT))
    .option('--tls-cert <file>', 'PEM certificate (chain) for HTTPS')
    .option('--tls-key <file>', 'PEM private key for HTTPS')
    .addOption(new Option('--log-level <level>', 'log level of the JSON log on stderr').choices(LOG_LEVELS).default('info'))
    .addHelpText(
      'after',
      `
Endpoints:
  GET  /healthz   liveness (200 while the process serves)
  GET  /readyz    200 when the last cycle did not fail and the cloud credential works, else 503 with reasons
  GET  /metrics   Prometheus metrics (idsync_*)
  GET  /status    health as JSON: last run, password outbox, heartbeat, credential state (never secrets),
                  and with several nodes (key "ha") this node's role, the leader and every node
  POST /api/v1/agent/password-hashes            the Samba DC agent's batches   (Authorization: Bearer <agent token>)
  POST /api/v1/password-change-notifications    password change notifications  (Authorization: Bearer <agent token>)

The agent token is a credential: \`idsync credentials set agent --no-validate\`. It is read at every request,
so a new token applies without a restart.

The password change endpoint carries passwords: in production listen with --tls-cert/--tls-key (or on
127.0.0.1 behind a TLS-terminating proxy). Plain HTTP on a non-loopback address is refused.

Several nodes: with the PostgreSQL store (\`store: { type: postgres, ... }\`) run \`idsync serve\` on two or more
hosts with the same configuration (and the same data key). One node leads under a lease: it runs the cycles
and password delivery; the others serve status and accept password changes into the shared outbox, and one
takes over within \`ha.leaseTtl\` + \`ha.renewInterval\` (6 s by default) when the leader stops. /status and
\`idsync service status\` show each node's role. See docs/ha.md.

SIGINT/SIGTERM stop the service: it stops accepting requests, lets the running cycle finish (30 s at most),
keeps undelivered password changes queued, and exits 0.

Examples:
  idsync serve
  idsync serve --interval 10m --port 7443
  idsync -c /etc/idsync/idsync.yaml serve --host 0.0.0.0 --tls-cert /etc/idsync/tls.crt --tls-key /etc/idsync/tls.key
  curl -s http://127.0.0.1:7443/status | jq .`,
    )
    .action(async (opts: ServeOptions, cmd: Command) => {
      if (!!opts.tlsCert !== !!opts.tlsKey) {
        throw new IdsyncError('CONFIG_INVALID', '--tls-cert and --tls-key go together', { hint: 'Pass both PEM files, or neither for loopback-only HTTP.' });
      }
      const loaded = loadFor(cmd);
      const interval = opts.interval ?? loaded.config.sync.interval;
      const intervalMs = parseDuration(interval);
      const port = parsePort(opts.port);
      const ctx = openContext(loaded);
      let service: SyncService;
      try {
        service = new SyncService(ctx, {
          intervalMs,
          host: opts.host,
          port,
          ...(opts.tlsCert && opts.tlsKey ? { tls: { cert: opts.tlsCert, key: opts.tlsKey } } : {}),
          logger: { level: opts.logLevel, stream: process.stderr },
        });
      } catch (err) {
        ctx.close();
        throw err;
      }
      let url: string;
      try {
        ({ url } = await service.start());
      } catch (err) {
        await service.stop(0, 'start failed').catch(() => undefined);
        throw err;
      }
      // Before it says where it listens (signals.ts); during start-up a signal still ends the
      // process. A second signal while the service stops: exit without waiting.
      const signals = new StopSignals((sig) => {
        process.stderr.write(`${sig} again: exiting without waiting\n`);
        process.exit(EXIT.FAILED);
      });
      let sig: NodeJS.Signals = 'SIGTERM';
      try {
        println(`idsync service listening on ${url} (sync cycle every ${interval}); Ctrl+C to stop`);
        sig = await signals.first;
        process.stderr.write(`${sig}: stopping (the running cycle may take up to ${DEFAULT_STOP_TIMEOUT_MS / 1000} s)\n`);
      } finally {
        try {
          await service.stop(DEFAULT_STOP_TIMEOUT_MS, sig);
        } finally {
          signals.dispose();
        }
      }
      process.exitCode = EXIT.OK;
    });
};
