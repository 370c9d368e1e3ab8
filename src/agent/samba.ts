/**
 * The Samba AD password agent: runs ON the domain controller, follows password changes with DirSync
 * over the DC's privileged ldapi socket (`private/ldap_priv/ldapi`, root only: the one local path
 * where Samba returns unicodePwd), computes the OrgId hash there, and forwards only
 * `{ anchor, orgIdHash, changedAt }` — the NT hash never leaves the DC.
 *
 *   loop every pollMs (default 1 s; the incumbent polls every 2 min):
 *     search(NC root, DirSync(cookie)) → changed users → OrgId hashes → forward → save the new cookie
 *
 * The first run (no cookie) reads every user: that is the initial full password sync. `full: true`
 * (CLI --full) ignores the saved cookie once and sends everyone again.
 */
import net from 'node:net';
import { Client, type Entry } from 'ldapts';
import { toIdsyncError } from '../core/errors.js';
import { guidToImmutableId } from '../ldap/guid.js';
import { passwordError } from '../passwords/errors.js';
import { orgIdHashFromNt } from '../passwords/hash.js';
import { DirSyncControl } from './dirsync.js';
import { CookieFile } from './state.js';

export interface AgentItem {
  /** objectGUID as base64: the AD connector's anchor and the cloud externalId. */
  anchor: string;
  orgIdHash: string;
  /** ISO time of the change (pwdLastSet). */
  changedAt: string;
}

/** Sends one batch (≤ 1000 items) to the sync service; throws when it was not accepted. */
export type Forwarder = (items: AgentItem[]) => Promise<void>;

export interface SambaAgentOptions {
  /** Path of the DC's privileged ldapi socket, e.g. /var/lib/samba/private/ldap_priv/ldapi. */
  ldapi: string;
  /** The naming context root, e.g. DC=lab,DC=test. */
  base: string;
  /** Where the DirSync cookie is kept. */
  stateDir: string;
  forward: Forwarder;
  pollMs?: number;
  /** LDAP filter of the accounts whose passwords are synced. */
  filter?: string;
  /** Ignore the saved cookie once (full password sync). */
  full?: boolean;
  /** Items per forwarded batch (default 1000, the endpoint's maximum). */
  forwardBatch?: number;
  /** Called with each failed round's error (the loop goes on with backoff). */
  onError?: (err: unknown) => void;
  /** Called after each round that saw changes. */
  onRound?: (round: { changes: number; forwarded: number }) => void;
}

export const DEFAULT_AGENT_FILTER = '(&(objectClass=user)(!(objectClass=computer)))';
const ATTRIBUTES = ['objectGUID', 'unicodePwd', 'pwdLastSet', 'sAMAccountName', 'isDeleted'];
const BUFFER_ATTRIBUTES = ['objectGUID', 'unicodePwd'];
/** 100-ns intervals between 1601-01-01 and 1970-01-01. */
const FILETIME_UNIX_EPOCH = 116444736000000000n;

/** pwdLastSet (FILETIME) → Date; undefined for 0 (must change at next logon) or garbage. */
export function fileTimeToDate(value: string | undefined): Date | undefined {
  if (!value || !/^\d{1,20}$/.test(value)) return undefined;
  const ft = BigInt(value);
  if (ft <= FILETIME_UNIX_EPOCH) return undefined;
  return new Date(Number((ft - FILETIME_UNIX_EPOCH) / 10000n));
}

function firstBuffer(v: Entry[string] | undefined): Buffer | undefined {
  const x = Array.isArray(v) ? v[0] : v;
  return Buffer.isBuffer(x) ? x : undefined;
}

function firstString(v: Entry[string] | undefined): string | undefined {
  const x = Array.isArray(v) ? v[0] : v;
  return typeof x === 'string' ? x : Buffer.isBuffer(x) ? x.toString('utf8') : undefined;
}

export class SambaPasswordAgent {
  private readonly cookies: CookieFile;
  private client: Client | undefined;
  private full: boolean;
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly options: SambaAgentOptions) {
    this.cookies = new CookieFile(options.stateDir, options.base);
    this.full = options.full ?? false;
  }

  get cookieFile(): string {
    return this.cookies.file;
  }

  private connect(): Client {
    this.client ??= new Client({
      url: 'ldap://localhost',
      timeout: 30_000,
      connectTimeout: 5_000,
      createConnection: (() => net.connect({ path: this.options.ldapi })) as unknown as typeof net.connect,
    });
    return this.client;
  }

  /** One DirSync round (repeated while the DC says there is more): returns what it saw and sent. */
  async pollOnce(): Promise<{ changes: number; forwarded: number }> {
    const client = this.connect();
    let cookie = this.full ? Buffer.alloc(0) : this.cookies.read();
    let changes = 0;
    let forwarded = 0;
    for (;;) {
      const control = new DirSyncControl(cookie);
      const res = await client.search(
        this.options.base,
        { scope: 'sub', filter: this.options.filter ?? DEFAULT_AGENT_FILTER, attributes: ATTRIBUTES, explicitBufferAttributes: BUFFER_ATTRIBUTES },
        control,
      );
      if (!control.answered) {
        throw passwordError('AGENT_STATE_INVALID', `the directory did not answer the DirSync control on ${this.options.base}`, {
          hint: 'Point --base at the domain naming context root (e.g. DC=example,DC=com) and --ldapi at the DC\'s private/ldap_priv/ldapi socket.',
        });
      }
      changes += res.searchEntries.length;
      const items = await this.itemsOf(client, res.searchEntries);
      const size = this.options.forwardBatch ?? 1000;
      for (let i = 0; i < items.length; i += size) {
        await this.options.forward(items.slice(i, i + size));
        forwarded += Math.min(size, items.length - i);
      }
      // Only now, with everything forwarded: the cookie moves on.
      cookie = control.cookie;
      this.cookies.write(cookie);
      this.full = false;
      if (!control.moreResults) break;
    }
    if (changes > 0) this.options.onRound?.({ changes, forwarded });
    return { changes, forwarded };
  }

  private async itemsOf(client: Client, entries: Entry[]): Promise<AgentItem[]> {
    const out: AgentItem[] = [];
    const work: Promise<void>[] = [];
    for (const e of entries) {
      if (firstString(e.isDeleted)?.toUpperCase() === 'TRUE') continue;
      const guid = firstBuffer(e.objectGUID);
      if (!guid || guid.length !== 16) continue;
      let nt = firstBuffer(e.unicodePwd);
      const pwdLastSet = firstString(e.pwdLastSet);
      if (!nt && pwdLastSet === undefined) continue; // something else changed
      work.push(
        (async () => {
          let when = pwdLastSet;
          if (!nt) {
            // pwdLastSet moved without unicodePwd in the delta: read the hash of this one object.
            const one = await client.search(`<GUID=${guidHex(guid)}>`, { scope: 'base', attributes: ['unicodePwd', 'pwdLastSet'], explicitBufferAttributes: ['unicodePwd'] });
            nt = firstBuffer(one.searchEntries[0]?.unicodePwd);
            when = firstString(one.searchEntries[0]?.pwdLastSet) ?? when;
          }
          if (!nt || nt.length !== 16) return;
          const changedAt = fileTimeToDate(when) ?? new Date();
          out.push({ anchor: guidToImmutableId(guid), orgIdHash: await orgIdHashFromNt(nt), changedAt: changedAt.toISOString() });
        })(),
      );
    }
    await Promise.all(work);
    return out;
  }

  /** Polls every pollMs until stop(); errors go to onError and back off (up to 60 s). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = (async () => {
      let failures = 0;
      while (this.running) {
        let delay = this.options.pollMs ?? 1000;
        try {
          await this.pollOnce();
          failures = 0;
        } catch (err) {
          failures++;
          this.options.onError?.(toIdsyncError(err));
          await this.dropClient();
          delay = Math.min(60_000, delay * 2 ** Math.min(failures, 6));
        }
        if (!this.running) break;
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delay);
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = undefined;
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    await this.dropClient();
  }

  private async dropClient(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    await c?.unbind().catch(() => undefined);
  }
}

/** objectGUID bytes → the string form used in `<GUID=...>` DNs. */
function guidHex(bytes: Buffer): string {
  const h = bytes.toString('hex');
  const s = [h.slice(6, 8) + h.slice(4, 6) + h.slice(2, 4) + h.slice(0, 2), h.slice(10, 12) + h.slice(8, 10), h.slice(14, 16) + h.slice(12, 14), h.slice(16, 20), h.slice(20)].join('-');
  return s;
}
