/**
 * The cloud directory for `npm run bench:hostile`, in its own process (so the bench's clients do not
 * share its event loop): `node --import tsx bench/hostile-server.ts <dataDir>` prints one JSON line
 * with the URL once it listens, and stops on SIGTERM.
 */
import { createWriteStream } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createCloudServer } from '../src/cloud/server.js';

const dataDir = process.argv[2];
if (!dataDir) throw new Error('usage: hostile-server.ts <dataDir>');
// IDSYNC_BENCH_SERVER_LOG=<file>: the server's JSON log (warnings and errors) into <file>.
const logFile = process.env.IDSYNC_BENCH_SERVER_LOG;
const server = await createCloudServer({ dataDir, logger: logFile ? { level: 'warn', stream: createWriteStream(logFile) } : false, adminUser: 'admin', adminPassword: process.env.IDSYNC_CLOUD_ADMIN_PASSWORD ?? 'Bench-admin-pass-1!' });
process.stdout.write(JSON.stringify({ url: server.url }) + '\n');
// The longest the event loop was held (what every other request waits for at worst).
const delay = monitorEventLoopDelay({ resolution: 5 });
process.on('SIGUSR2', () => {
  const ms = (ns: number) => +(ns / 1e6).toFixed(1);
  process.stdout.write(JSON.stringify({ loopDelayMs: { p50: ms(delay.percentile(50)), p99: ms(delay.percentile(99)), max: ms(delay.max) } }) + '\n');
  delay.reset();
});
delay.enable();
process.on('SIGTERM', () => {
  void server.close().then(() => process.exit(0));
});
