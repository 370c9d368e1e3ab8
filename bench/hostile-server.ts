/**
 * The cloud directory for `npm run bench:hostile`, in its own process (so the bench's clients do not
 * share its event loop): `node --import tsx bench/hostile-server.ts <dataDir>` prints one JSON line
 * with the URL once it listens, and stops on SIGTERM.
 */
import { createWriteStream, readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createCloudServer } from '../src/cloud/server.js';

const dataDir = process.argv[2];
if (!dataDir) throw new Error('usage: hostile-server.ts <dataDir>');
// IDSYNC_BENCH_SERVER_LOG=<file>: the server's JSON log (warnings and errors) into <file>.
const logFile = process.env.IDSYNC_BENCH_SERVER_LOG;
// IDSYNC_BENCH_CLOUD_DATABASE=postgres://…: the cloud on PostgreSQL instead of <dataDir>/cloud.db.
const database = process.env.IDSYNC_BENCH_CLOUD_DATABASE;
const server = await createCloudServer({ dataDir, ...(database ? { database } : {}), logger: logFile ? { level: 'warn', stream: createWriteStream(logFile) } : false, adminUser: 'admin', adminPassword: process.env.IDSYNC_CLOUD_ADMIN_PASSWORD ?? 'Bench-admin-pass-1!' });
process.stdout.write(JSON.stringify({ url: server.url }) + '\n');
// The longest the event loop was held (what every other request waits for at worst).
const delay = monitorEventLoopDelay({ resolution: 5 });
/** CPU seconds (user + system) of one thread of this process (Linux); the main thread's id is the pid. */
const threadCpu = (tid: number): number => {
  const f = readFileSync(`/proc/${process.pid}/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
const processCpu = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
let since = { main: threadCpu(process.pid), all: processCpu(), elu: performance.eventLoopUtilization() };
process.on('SIGUSR2', () => {
  const ms = (ns: number) => +(ns / 1e6).toFixed(1);
  const now = { main: threadCpu(process.pid), all: processCpu(), elu: performance.eventLoopUtilization() };
  // The main thread's share of the server's CPU, and how busy its event loop was: robust to a busy machine, unlike latencies.
  const cpu = { mainSeconds: +(now.main - since.main).toFixed(2), processSeconds: +(now.all - since.all).toFixed(2), loopUtilization: +performance.eventLoopUtilization(now.elu, since.elu).utilization.toFixed(3) };
  since = now;
  process.stdout.write(JSON.stringify({ loopDelayMs: { p50: ms(delay.percentile(50)), p99: ms(delay.percentile(99)), max: ms(delay.max) }, cpu }) + '\n');
  delay.reset();
});
// IDSYNC_BENCH_LOOP_MONITOR=0: no event-loop delay sampling (it wakes the loop every 5 ms: CPU that benches per user would count).
if (process.env.IDSYNC_BENCH_LOOP_MONITOR !== '0') delay.enable();
process.on('SIGTERM', () => {
  void server.close().then(() => process.exit(0));
});
