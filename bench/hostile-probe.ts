/**
 * The probes of `npm run bench:hostile`, in a process of their own so that building and sending
 * the hostile bodies (the bench's clients) never delays a probe: GET /healthz and a password
 * sign-in, alternately, every PROBE_MS until the deadline; prints one JSON line of latencies.
 *
 *   node --import tsx bench/hostile-probe.ts <url> <untilEpochMs> <signinFormBody>
 */
import { Client } from 'undici';

const [url, untilArg, signinBody] = process.argv.slice(2);
if (!url || !untilArg || signinBody === undefined) throw new Error('usage: hostile-probe.ts <url> <untilEpochMs> <signinFormBody>');
const until = Number(untilArg);
const PROBE_MS = 25;
const client = new Client(url, { headersTimeout: 600_000, bodyTimeout: 600_000 });
const health: number[] = [];
const signin: number[] = [];
const failures: Record<string, number> = {};
for (let i = 0; Date.now() < until; i++) {
  const isHealth = i % 2 === 0;
  const t0 = performance.now();
  const res = isHealth
    ? await client.request({ method: 'GET', path: '/healthz' })
    : await client.request({ method: 'POST', path: '/oauth2/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: signinBody });
  await res.body.dump();
  (isHealth ? health : signin).push(performance.now() - t0);
  if (res.statusCode !== 200) {
    const k = `${isHealth ? '/healthz' : 'sign-in'} ${res.statusCode}`;
    failures[k] = (failures[k] ?? 0) + 1;
  }
  await new Promise((r) => setTimeout(r, PROBE_MS));
}
await client.close();
process.stdout.write(JSON.stringify({ health, signin, failures }) + '\n');
