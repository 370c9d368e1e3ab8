/**
 * The leader lease's worker thread (lease.ts starts it). It owns a PostgreSQL connection of its own
 * and acquires or renews the lease every `renewMs`, whatever the main thread is doing: the
 * PostgreSQL store's synchronous bridge blocks the main thread during queries, and a lease renewed
 * from there would expire behind a long transaction.
 *
 * What the main thread needs at once it reads from shared memory, not from messages (a blocked main
 * thread reads messages late): state[0] is the token this node holds (0: none), state[1] the local
 * deadline of that term on the monotonic clock (ms). The deadline is the time the renewal was *sent*
 * plus the lease time, so it never outlasts the database's expiry, whatever the clocks say.
 */
import { parentPort, workerData } from 'node:worker_threads';
import pg from 'pg';
import { ACQUIRE_SQL, LEASE_ROW_SQL, NODE_GONE_SQL, NODE_HEARTBEAT_SQL, NODES_PRUNE_SQL, NODES_SQL, RELEASE_SQL, RENEW_SQL, TAKEOVER_LOCK_SQL } from './lease-sql.js';
import { monotonicMs, type HaNode, type LeaseWorkerData, type LeaseWorkerMessage, type ToLeaseWorker } from './lease-protocol.js';

const data = workerData as LeaseWorkerData;
const port = parentPort!;
const state = new Float64Array(data.state);
/** Margin taken off the local deadline for clocks that run at slightly different rates. */
const DRIFT_MARGIN_MS = Math.min(250, data.ttlMs / 10);

let client: pg.Client | undefined;
let stopped = false;
let timer: NodeJS.Timeout | undefined;
let watchdog: NodeJS.Timeout | undefined;
let unreachable = false;
let url: string | null = null;
let lastPrune = 0;

const send = (m: LeaseWorkerMessage): void => port.postMessage(m);

async function connect(): Promise<pg.Client> {
  if (client) return client;
  const { applicationName: _name, ...connection } = data.connection;
  const c = new pg.Client({
    ...connection,
    application_name: `idsync-lease ${data.node}`,
    connectionTimeoutMillis: data.ttlMs,
    // A query that hangs (a network cut) must not hold the loop past the lease.
    query_timeout: Math.max(1000, data.ttlMs - data.renewMs),
    statement_timeout: Math.max(1000, data.ttlMs - data.renewMs),
  });
  c.on('error', () => undefined); // a dropped connection is seen by the next query
  // The tables are the store's migration ha/001-lease: the service opens (and migrates) the store first.
  try {
    await c.connect();
  } catch (err) {
    await c.end().catch(() => undefined);
    throw err;
  }
  client = c;
  return c;
}

function drop(token: number, reason: string): void {
  if (state[0] !== token || token === 0) return;
  state[0] = 0;
  state[1] = 0;
  send({ kind: 'lost', token, reason });
}

async function tick(): Promise<void> {
  const held = state[0]!;
  const sentAt = monotonicMs();
  let c: pg.Client;
  try {
    c = await connect();
    const row = held !== 0 ? await renew(c, held) : await takeOver(c);
    if (row) {
      if (state[0] !== held) return; // dropped by the main thread meanwhile: the next tick starts a new term
      const deadline = sentAt + Math.min(data.ttlMs, row.remaining_ms) - DRIFT_MARGIN_MS;
      if (row.token !== held) {
        if (held !== 0) drop(held, 'the lease expired before it was renewed');
        // The deadline before the token: the main thread may read them the moment the token is set.
        state[1] = deadline;
        state[0] = row.token;
        send({ kind: 'acquired', token: row.token, previousHolder: row.previous_holder ?? null, expiresAt: (row.expires_at ?? new Date()).toISOString() });
      } else {
        state[1] = deadline;
      }
      armWatchdog(row.token);
    } else if (held !== 0) {
      drop(held, 'the lease expired before it was renewed, or another node holds it');
    }
    const role = state[0] !== 0 ? 'leader' : 'standby';
    await c.query(NODE_HEARTBEAT_SQL, [data.holder, data.node, url, process.pid, role, state[0] !== 0 ? state[0] : null]);
    const lease = (await c.query<{ holder: string; node: string; token: number; expires_at: Date; live: boolean }>(LEASE_ROW_SQL)).rows[0];
    const nodes = (
      await c.query<{ holder: string; node: string; url: string | null; pid: number; role: 'leader' | 'standby'; token: number | null; started_at: Date; seen_at: Date; silent_seconds: number }>(NODES_SQL)
    ).rows.map(
      (n): HaNode => ({ node: n.node, holder: n.holder, url: n.url, pid: n.pid, role: n.role, token: n.token, startedAt: n.started_at.toISOString(), seenAt: n.seen_at.toISOString(), silentSeconds: Math.max(0, Math.round(n.silent_seconds)) }),
    );
    send({
      kind: 'observed',
      leader: lease ? { holder: lease.holder, node: lease.node, token: lease.token, expiresAt: lease.expires_at.toISOString(), live: lease.live } : null,
      nodes,
    });
    if (Date.now() - lastPrune > 3600_000) {
      lastPrune = Date.now();
      await c.query(NODES_PRUNE_SQL);
    }
    if (unreachable) {
      unreachable = false;
      send({ kind: 'reachable' });
    }
  } catch (err) {
    const c2 = client;
    client = undefined;
    await c2?.end().catch(() => undefined);
    if (!unreachable) {
      unreachable = true;
      send({ kind: 'unreachable', error: describe(err) });
    }
    // The watchdog ends the term at its deadline; nothing else to do until the next tick.
  }
}

interface TermRow {
  token: number;
  previous_holder?: string | null;
  expires_at?: Date;
  remaining_ms: number;
}

async function renew(c: pg.Client, held: number): Promise<TermRow | undefined> {
  return (await c.query<TermRow>(RENEW_SQL, [data.holder, held, data.ttlMs])).rows[0];
}

/** Tries to start a term: only when the lease is free (expired, or never held); see TAKEOVER_LOCK_SQL. */
async function takeOver(c: pg.Client): Promise<TermRow | undefined> {
  const current = (await c.query<{ live: boolean }>(LEASE_ROW_SQL)).rows[0];
  if (current?.live) return undefined;
  await c.query('BEGIN');
  try {
    await c.query(TAKEOVER_LOCK_SQL);
    const row = (await c.query<TermRow>(ACQUIRE_SQL, [data.holder, data.node, data.ttlMs, 0])).rows[0];
    await c.query('COMMIT');
    return row;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** Ends the term at its local deadline if no renewal moved it: a hung query cannot keep a dead lease. */
function armWatchdog(token: number): void {
  if (watchdog) clearTimeout(watchdog);
  const wait = Math.max(0, state[1]! - monotonicMs());
  watchdog = setTimeout(() => {
    if (state[0] === token && monotonicMs() >= state[1]!) drop(token, `no renewal reached PostgreSQL within the lease time (${data.ttlMs} ms)`);
  }, wait + 1);
}

function describe(err: unknown): string {
  const e = err as { code?: string; message?: string };
  // Never the connection string: it may carry the password.
  return e.code ? `${e.code}: ${String(e.message ?? '').replace(/postgres(ql)?:\/\/\S+/g, 'postgres://…')}` : String(e.message ?? err).replace(/postgres(ql)?:\/\/\S+/g, 'postgres://…');
}

function loop(): void {
  if (stopped) return;
  void tick().finally(() => {
    if (!stopped) timer = setTimeout(loop, data.renewMs);
  });
}

port.on('message', (m: ToLeaseWorker) => {
  if (m.kind === 'describe') {
    url = m.url;
    return;
  }
  if (m.kind === 'drop') {
    drop(m.token, m.reason);
    return;
  }
  if (m.kind === 'stop') {
    stopped = true;
    if (timer) clearTimeout(timer);
    if (watchdog) clearTimeout(watchdog);
    const held = state[0]!;
    state[0] = 0;
    state[1] = 0;
    void (async () => {
      const c = client;
      if (c) {
        try {
          if (held !== 0 && m.release) await c.query(RELEASE_SQL, [data.holder, held]);
          await c.query(NODE_GONE_SQL, [data.holder]);
        } catch {
          /* the lease expires by itself */
        }
        await c.end().catch(() => undefined);
      }
      send({ kind: 'stopped' });
      port.close();
    })();
  }
});

loop();
