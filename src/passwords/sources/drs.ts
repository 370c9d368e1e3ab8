/**
 * Password source `passwords: { source: drs }` on an AD connector: replicates unicodePwd from a DC
 * over MS-DRSR (src/drsuapi/) with the connector's bind account, polls for changes every second
 * by default, and queues the OrgId hashes in the durable outbox (pipeline.observeNtHashes).
 *
 *   first start / `idsync passwords resync --all` ─▶ full pass (every object, paged)
 *   then every pollInterval ─▶ incremental GetNCChanges from the saved high-water mark
 *
 * The replication state is written only after the hashes of a page are queued, so a crash
 * (kill -9) between the two repeats the page; the fingerprints make the repeat queue nothing new.
 * Only users in the connector's scope AND in its connector space are synced; computers, trust
 * accounts and krbtgt never are. NT hashes exist only in memory between decryption and the
 * OrgId transform.
 */
import { URL } from 'node:url';
import type { AdConnectorConfig, DrsPasswordSourceConfig } from '../../config/schema.js';
import { IdsyncError, toIdsyncError } from '../../core/errors.js';
import type { SecretResolver } from '../../credentials/store.js';
import { DrsClient, type DrsConnectOptions, type ReplicatedUser, type ReplicationState } from '../../drsuapi/client.js';
import { DrsError, ERROR_DS_DRA_ACCESS_DENIED, ERROR_DS_DRA_BAD_DN, refusesState } from '../../drsuapi/errors.js';
import { EVENTS } from '../../events/catalog.js';
import type { EventLog } from '../../events/log.js';
import { guidToBytes } from '../../rpc/ndr.js';
import { resolveScope, type ResolvedScope } from '../../ldap/search.js';
import { ConnectorSpaceUsers } from '../../engine/connector-space-users.js';
import type { Database } from '../../store/database.js';
import { logToStderr, type PasswordPipeline } from '../pipeline.js';

const UAC_TRUST_ACCOUNTS = 0x0800 | 0x1000 | 0x2000; // interdomain, workstation, server trust
const RID_KRBTGT = 502;
const MAX_ERROR_BACKOFF_MS = 60_000;

export interface DrsSourceDeps {
  db: Database;
  pipeline: PasswordPipeline;
  connector: DrsConnector;
  /** The connector's bind password, read at each (re)connect. */
  secret: SecretResolver;
  /** Changes when the credential changes (reconnect with the new one). */
  credentialVersion?: () => string | undefined;
  events: EventLog;
  /** Where the poller says what it cannot put in the event log (default: standard error). */
  log?: (level: 'warn' | 'error', msg: string) => void;
  /** How to connect (default DrsClient.connect); tests wrap it to inject a DC answer. */
  connectClient?: (o: DrsConnectOptions) => Promise<DrsClient>;
}

export interface PollResult {
  full: boolean;
  objects: number;
  queued: number;
}

/** Parses "500ms", "1s", "2m". */
export function parsePollInterval(s: string): number {
  const m = /^(\d+)(ms|s|m)$/.exec(s);
  if (!m) throw new IdsyncError('CONFIG_INVALID', `passwords.pollInterval "${s}" is not a duration such as "1s"`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

/** NTLM user and domain from "DOMAIN\\user" or "user@dns.domain". */
export function ntlmAccount(account: string): { user: string; domain: string } | undefined {
  const down = /^([^\\/@=,]+)\\([^\\@=,]+)$/.exec(account);
  if (down) return { domain: down[1] as string, user: down[2] as string };
  // A UPN goes as the user name with an empty domain (MS-NLMP 3.1.5.1.2); DCs resolve it.
  if (/^[^\\@=,]+@[^\\@=,]+$/.test(account)) return { user: account, domain: '' };
  return undefined;
}

interface StoredState {
  hwm: [string, string, string];
  utd: Array<[string, string]>;
}

type DrsConnector = AdConnectorConfig & { passwords: DrsPasswordSourceConfig };

/** How to reach and authenticate to the connector's DC (the password is read now, at use time). */
export async function drsConnectOptions(connector: DrsConnector, secret: SecretResolver): Promise<DrsConnectOptions> {
  const cfg = connector.passwords;
  const raw = cfg.account ?? connector.bindDn;
  const acc = ntlmAccount(raw);
  if (!acc) {
    throw new IdsyncError('CONFIG_INVALID', `connector ${connector.name}: cannot use "${raw}" as an NTLM account for password replication`, {
      hint: 'Set passwords.account to DOMAIN\\user or user@dns.domain (the account of bindDn), or use a UPN as bindDn.',
      details: { connector: connector.name },
    });
  }
  const password = await secret();
  if (!password) {
    throw new IdsyncError('CREDENTIAL_MISSING', `no credential for connector ${connector.name}`, { hint: `Run \`idsync credentials set ${connector.name}\`.` });
  }
  return {
    host: cfg.host ?? new URL(connector.url).hostname,
    ...(cfg.rpcPort ? { port: cfg.rpcPort } : {}),
    epmPort: cfg.epmPort,
    user: acc.user,
    domain: acc.domain,
    password,
    timeoutMs: Math.max(30_000, connector.timeoutMs),
  };
}

/**
 * Whether the account may replicate password hashes: binds and asks for one object with the
 * secret attributes (what needs DS-Replication-Get-Changes-All). Throws the error a poll would.
 */
export async function probeDrsAccess(connector: DrsConnector, secret: SecretResolver): Promise<void> {
  const client = await DrsClient.connect(await drsConnectOptions(connector, secret));
  try {
    for await (const page of client.changes({ ncDn: connector.baseDn, maxObjects: 10 })) {
      for (const u of page.users) u.nt?.fill(0);
      break;
    }
  } finally {
    await client.close();
  }
}

export class DrsStateStore {
  private readonly get;
  private readonly put;
  private readonly del;
  private readonly delAll;

  constructor(private readonly db: Database) {
    this.get = db.prepare<[string], { invocation_id: string; state: string; full_done_at: string | null }>(
      'SELECT invocation_id, state, full_done_at FROM phs_drs_state WHERE connector = ?',
    );
    this.put = db.prepare<[string, string, string, string | null, string]>(
      `INSERT INTO phs_drs_state (connector, invocation_id, state, full_done_at, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (connector) DO UPDATE SET invocation_id = excluded.invocation_id, state = excluded.state,
         full_done_at = COALESCE(excluded.full_done_at, phs_drs_state.full_done_at), updated_at = excluded.updated_at`,
    );
    this.del = db.prepare<[string]>('DELETE FROM phs_drs_state WHERE connector = ?');
    this.delAll = db.prepare('DELETE FROM phs_drs_state');
  }

  load(connector: string): ReplicationState | undefined {
    const r = this.read(connector);
    return 'state' in r ? r.state : undefined;
  }

  /** The saved state, nothing (first start, resync --all), or why the saved row cannot be used. */
  read(connector: string): { state: ReplicationState; fullDone: boolean } | { none: true } | { unreadable: string } {
    const row = this.get.get(connector);
    if (!row) return { none: true };
    try {
      const s = JSON.parse(row.state) as StoredState;
      const usn = (v: string): bigint => {
        if (!/^\d{1,20}$/.test(v)) throw new Error(`"${v.slice(0, 30)}" is not a USN`);
        return BigInt(v);
      };
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(row.invocation_id)) throw new Error('the invocation ID is not a GUID');
      if (!Array.isArray(s.hwm) || s.hwm.length !== 3 || !Array.isArray(s.utd)) throw new Error('no high-water mark or up-to-dateness vector');
      return {
        fullDone: row.full_done_at !== null,
        state: {
          invocationId: row.invocation_id,
          highWaterMark: { tmpHighestUsn: usn(s.hwm[0]), reservedUsn: usn(s.hwm[1]), highestUsn: usn(s.hwm[2]) },
          upToDateness: s.utd.map(([id, v]) => ({ invocationId: String(id), highestUsn: usn(String(v)) })),
        },
      };
    } catch (err) {
      // a full pass rebuilds it
      return { unreadable: err instanceof SyntaxError ? 'it is not JSON' : err instanceof Error ? err.message : String(err) };
    }
  }

  save(connector: string, st: ReplicationState, fullDone: boolean): void {
    const json: StoredState = {
      hwm: [String(st.highWaterMark.tmpHighestUsn), String(st.highWaterMark.reservedUsn), String(st.highWaterMark.highestUsn)],
      utd: st.upToDateness.map((c) => [c.invocationId, String(c.highestUsn)]),
    };
    const now = new Date().toISOString();
    this.put.run(connector, st.invocationId, JSON.stringify(json), fullDone ? now : null, now);
  }

  /** Forget the state: the next poll is a full pass (`idsync passwords resync --all`). */
  forget(connector?: string): void {
    if (connector) this.del.run(connector);
    else this.delAll.run();
  }
}

export class DrsPasswordSource {
  readonly pollMs: number;
  private readonly cfg: DrsPasswordSourceConfig;
  private readonly state: DrsStateStore;
  private readonly scope: ResolvedScope;
  private readonly host: string;
  private readonly csUsers;
  private client: DrsClient | undefined;
  private clientVersion: string | undefined;
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private failing: string | undefined;
  private errorDelayMs = 0;

  constructor(private readonly deps: DrsSourceDeps) {
    this.cfg = deps.connector.passwords;
    this.pollMs = parsePollInterval(this.cfg.pollInterval);
    this.state = new DrsStateStore(deps.db);
    this.scope = resolveScope({ baseDn: deps.connector.baseDn, include: deps.connector.scope.include, exclude: deps.connector.scope.exclude });
    this.host = this.cfg.host ?? new URL(deps.connector.url).hostname;
    this.csUsers = new ConnectorSpaceUsers(deps.db);
  }

  private get name(): string {
    return this.deps.connector.name;
  }

  private async connect(): Promise<DrsClient> {
    const version = this.deps.credentialVersion?.();
    if (this.client && version === this.clientVersion) return this.client;
    await this.disconnect();
    const connect = this.deps.connectClient ?? ((o: DrsConnectOptions) => DrsClient.connect(o));
    this.client = await connect(await drsConnectOptions(this.deps.connector, this.deps.secret));
    this.clientVersion = version;
    return this.client;
  }

  private async disconnect(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    await c?.close();
  }

  /**
   * Whether a replicated object gets its hash synced, and under which anchor; 'fetch' when it is
   * a partial change of an object not imported yet, whose account type only the whole object says.
   */
  private anchorFor(u: ReplicatedUser): string | 'fetch' | undefined {
    if (!u.nt || u.guid === '00000000-0000-0000-0000-000000000000') return undefined;
    if (u.rid === RID_KRBTGT) return undefined;
    if (u.userAccountControl !== undefined && (u.userAccountControl & UAC_TRUST_ACCOUNTS) !== 0) return undefined;
    if (u.sAMAccountName !== undefined && (u.sAMAccountName.endsWith('$') || /^krbtgt(_\d+)?$/i.test(u.sAMAccountName))) return undefined;
    if (!u.dn || !this.scope.contains(u.dn)) return undefined;
    const anchor = guidToBytes(u.guid).toString('base64');
    // An incremental change carries only what changed: the connector space has the rest.
    const cs = this.csUsers.adAccount(this.name, anchor);
    if (!cs) {
      // Not imported yet (created or moved into scope since the last cycle): queue a complete
      // object, whose account type we saw; the outbox holds it until the user is exported. A
      // partial change (a password set after the object was created) is fetched whole first.
      return u.userAccountControl !== undefined && u.sAMAccountName !== undefined ? anchor : 'fetch';
    }
    const uac = cs.uac === null ? undefined : Number(cs.uac);
    if (uac !== undefined && (uac & UAC_TRUST_ACCOUNTS) !== 0) return undefined;
    if (cs.sam && (cs.sam.endsWith('$') || /^krbtgt(_\d+)?$/i.test(cs.sam))) return undefined;
    return anchor;
  }

  /**
   * One poll: a full pass when there is no usable saved state, else the changes since it. A DC
   * that refuses the saved state (an ERROR_DS_DRA_* other than access denied) or whose database
   * went back in time gets a full pass from zero instead, with event 6403 saying why.
   */
  async pollOnce(): Promise<PollResult> {
    const saved = this.state.read(this.name);
    if ('unreadable' in saved) {
      this.discard(`the saved state is unreadable: ${saved.unreadable}`);
      return this.pass(undefined, 'the saved replication state was unreadable');
    }
    if ('none' in saved) return this.pass(undefined, 'no replication state for this connector');
    try {
      // a full pass cut short (kill -9, a DC restart) resumes from its last saved page
      return await this.pass(saved.state, undefined, !saved.fullDone);
    } catch (err) {
      const werror = err instanceof DrsError ? err.werror : undefined;
      if (werror === undefined || werror === ERROR_DS_DRA_ACCESS_DENIED || !refusesState(werror)) throw err;
      // Whatever pages of this poll were saved before the refusal, a pass from zero reads every
      // user, the ones changed meanwhile included; fingerprints keep the others from going again.
      this.discard(`the DC refused it: ${toIdsyncError(err).message}`);
      return this.pass(undefined, `the DC refused the saved replication state (WERROR 0x${werror.toString(16).padStart(8, '0')})`);
    }
  }

  private discard(reason: string): void {
    this.state.forget(this.name);
    this.deps.events.emit(EVENTS.DRS_STATE_DISCARDED, { connector: this.name, dc: this.host, reason });
  }

  private async pass(from: ReplicationState | undefined, fullReason?: string, resumesFull = false): Promise<PollResult> {
    const client = await this.connect();
    let full = !from;
    let objects = 0;
    let queued = 0;
    if (full) this.deps.events.emit(EVENTS.DRS_FULL_PASS_STARTED, { connector: this.name, dc: this.host, reason: fullReason ?? 'no replication state for this connector' });
    // Each page's hashes are dated by when the page was asked for (as an import's: engine/import.ts),
    // so a notification accepted while the page was read, before the change reached this DC, wins.
    let askedAt = new Date();
    for await (const page of client.changes({ ncDn: this.deps.connector.baseDn, maxObjects: this.cfg.maxObjects, ...(from ? { from } : {}) })) {
      if (page.full && !full) {
        full = true;
        const reason = page.restartReason ?? 'the DC started over';
        if (page.rollback) this.deps.events.emit(EVENTS.DRS_STATE_DISCARDED, { connector: this.name, dc: this.host, reason });
        this.deps.events.emit(EVENTS.DRS_FULL_PASS_STARTED, { connector: this.name, dc: this.host, reason });
      }
      objects += page.objectCount;
      const items: { anchor: string; nt: Buffer }[] = [];
      const fetched: ReplicatedUser[] = [];
      try {
        for (const u of page.users) {
          let anchor = this.anchorFor(u);
          if (anchor === 'fetch') {
            const whole = await this.fetchWhole(client, u);
            if (whole) fetched.push(whole);
            anchor = whole ? this.anchorFor(whole) : undefined;
            // the hash of this change, which the whole object also carries (or a newer one)
            if (whole?.nt && typeof anchor === 'string') items.push({ anchor, nt: whole.nt });
            continue;
          }
          if (anchor && u.nt) items.push({ anchor, nt: u.nt });
        }
        if (items.length) queued += await this.deps.pipeline.observeNtHashes(this.name, items, undefined, 'drs', askedAt);
      } finally {
        // the hashes are in the outbox (sealed) or the page is repeated: drop them from memory
        for (const u of page.users) u.nt?.fill(0);
        for (const u of fetched) u.nt?.fill(0);
      }
      // durable only now that the page's hashes are in the outbox
      this.state.save(this.name, page.state, (full || resumesFull) && !page.more);
      askedAt = new Date(); // the loop asks for the next page now
    }
    if (full || resumesFull) this.deps.events.emit(EVENTS.DRS_FULL_PASS_COMPLETED, { connector: this.name, dc: this.host, objects, queued });
    return { full, objects, queued };
  }

  /** The whole object of a partial change (EXOP_REPL_OBJ); undefined when it is gone meanwhile. */
  private async fetchWhole(client: DrsClient, u: ReplicatedUser): Promise<ReplicatedUser | undefined> {
    try {
      const whole = await client.fetchObject(u.dn, u.guid);
      // fetched whole: anchorFor must not ask again
      return whole && whole.userAccountControl !== undefined && whole.sAMAccountName !== undefined ? whole : undefined;
    } catch (err) {
      if (err instanceof DrsError && err.werror === ERROR_DS_DRA_BAD_DN) return undefined; // deleted since
      throw err;
    }
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    await this.disconnect();
  }

  /** The poll loop. Nothing it meets may end it: a rejection here would end the process. */
  private async run(): Promise<void> {
    while (this.running) {
      try {
        await this.pollOnce();
        if (this.failing !== undefined) this.deps.events.emit(EVENTS.DRS_REPLICATION_RECOVERED, { connector: this.name, dc: this.host });
        this.failing = undefined;
        this.errorDelayMs = 0;
      } catch (err) {
        await this.disconnect().catch(() => undefined); // the connection is given up either way
        const e = toIdsyncError(err);
        // one 611 per distinct failure, not one per second
        if (this.failing !== e.code) this.reportFailure(e);
        this.failing = e.code;
        this.errorDelayMs = Math.min(MAX_ERROR_BACKOFF_MS, Math.max(this.pollMs, this.errorDelayMs * 2 || 1000));
      }
      if (!this.running) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.failing ? this.errorDelayMs : this.pollMs);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** Event 611, outside the fence; when the store is what failed, the service's log says it instead. */
  private reportFailure(e: IdsyncError): void {
    const details = { connector: this.name, error: e.hint ? `${e.message}. ${e.hint}` : e.message, code: e.code, dc: this.host };
    this.deps.events.tryEmit(EVENTS.PHS_DOMAIN_ERROR, details, (msg) => (this.deps.log ?? logToStderr)('error', msg));
  }
}
