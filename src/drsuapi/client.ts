/**
 * A DRSUAPI client that replicates password hashes from one DC: endpoint mapper lookup (or a
 * fixed port), an NTLMv2 bind at packet privacy, DRSBind, then DRSGetNCChanges pages of the
 * domain naming context restricted to the attributes PHS needs, and DRSUnbind.
 *
 * `changes()` yields one page at a time with the NT hashes already decrypted, plus the
 * replication state to store once the page's hashes are safely queued: the caller decides when
 * the state is durable, so a crash repeats a page instead of losing it.
 */
import { RpcConnection } from '../rpc/connection.js';
import { lookupTcpPort } from '../rpc/epm.js';
import { NIL_GUID } from '../rpc/ndr.js';
import { ATT, OID_PREFIX_MS_DS_ATTRS, PHS_ATTIDS } from './attids.js';
import { DrsError, ERROR_DS_DRA_ACCESS_DENIED, accessDenied, drsFailed } from './errors.js';
import {
  DRSUAPI_SYNTAX,
  DRS_INIT_SYNC,
  DRS_WRIT_REP,
  EXOP_REPL_OBJ,
  EXT_GETCHGREQ_V8,
  OPNUM,
  ZERO_HWM,
  decodeBind,
  decodeGetNCChanges,
  encodeBind,
  encodeGetNCChanges,
  encodeUnbind,
  trailingWerror,
  type Cursor,
  type GetNCChangesReply,
  type HighWaterMark,
  type ReplicatedObject,
} from './messages.js';
import { decryptNtHash, ridFromSid } from './secrets.js';

export interface DrsConnectOptions {
  host: string;
  /** The DRSUAPI TCP port; when absent the endpoint mapper is asked. */
  port?: number;
  /** The endpoint mapper's port (default 135). */
  epmPort?: number;
  /** The account (sAMAccountName) and its NetBIOS domain, as NTLM wants them. */
  user: string;
  domain: string;
  password: string;
  timeoutMs?: number;
  /** For tests and captures: every PDU as sent and received. */
  tap?: (direction: 'out' | 'in', pdu: Buffer) => void;
  /** For replaying captures (see RpcConnectOptions.ntlmRandom). */
  ntlmRandom?: (n: number) => Buffer;
}

/** Where incremental replication resumes: saved per source DC invocation ID. */
export interface ReplicationState {
  invocationId: string;
  highWaterMark: HighWaterMark;
  upToDateness: Cursor[];
}

export interface ReplicatedUser {
  guid: string;
  dn: string;
  sid: Buffer;
  rid: number | undefined;
  sAMAccountName?: string;
  userPrincipalName?: string;
  userAccountControl?: number;
  /** The NT hash when the change carried unicodePwd (held in memory only). */
  nt?: Buffer;
}

export interface ReplicationPage {
  users: ReplicatedUser[];
  /** The state after this page: store it once the page's hashes are queued. */
  state: ReplicationState;
  more: boolean;
  /** Objects in the reply, hashes or not. */
  objectCount: number;
  /** The server's invocation ID differs from the saved state's: the page is part of a full pass. */
  full: boolean;
  /** Why an incremental call became a full pass (set on the page where it happened). */
  restartReason?: string;
  /** The restart is a warning (the DC's database went back in time), not a routine DC switch. */
  rollback?: boolean;
}

export interface ChangesOptions {
  /** The domain root DN (the naming context). */
  ncDn: string;
  /** The saved state; absent = full pass. */
  from?: ReplicationState;
  /** Objects per reply (cMaxObjects, default 1000). */
  maxObjects?: number;
  /** Prefix table variant (default 'schemaInfo'). */
  prefixTable?: 'schemaInfo' | 'empty';
}

export class DrsClient {
  private constructor(
    private readonly conn: RpcConnection,
    private readonly handle: Buffer,
    private readonly sessionKey: Buffer,
    private readonly account: string,
    readonly serverExtensions: number,
  ) {}

  static async connect(o: DrsConnectOptions): Promise<DrsClient> {
    const timeout = o.timeoutMs ? { timeoutMs: o.timeoutMs } : {};
    const port = o.port ?? (await lookupTcpPort(o.host, DRSUAPI_SYNTAX, { ...(o.epmPort ? { epmPort: o.epmPort } : {}), ...timeout }));
    const conn = await RpcConnection.connect({ host: o.host, port, role: 'DRSUAPI', ...timeout, ...(o.tap ? { tap: o.tap } : {}), ...(o.ntlmRandom ? { ntlmRandom: o.ntlmRandom } : {}) });
    try {
      await conn.bind(DRSUAPI_SYNTAX, { user: o.user, domain: o.domain, password: o.password });
      const reply = decodeBind(await conn.call(OPNUM.bind, encodeBind()));
      if (reply.werror !== 0) {
        if (reply.werror === ERROR_DS_DRA_ACCESS_DENIED || reply.werror === 5) throw accessDenied(`${o.domain}\\${o.user}`, '(the domain root)');
        throw drsFailed('IDL_DRSBind', reply.werror);
      }
      if ((reply.extFlags & EXT_GETCHGREQ_V8) === 0) {
        throw new DrsError('DRS_FAILED', 'the DC does not support DRS_MSG_GETCHGREQ_V8 (Windows Server 2003 or later, Samba 4 are required)');
      }
      const key = conn.sessionKey;
      if (!key) throw new DrsError('DRS_FAILED', 'no session key after the NTLM bind');
      return new DrsClient(conn, reply.handle, key, `${o.domain}\\${o.user}`, reply.extFlags);
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  /** One DRSGetNCChanges call. */
  async getNCChanges(
    ncDn: string,
    state: ReplicationState,
    flags: number,
    maxObjects: number,
    prefixTable?: 'schemaInfo' | 'empty',
    exop?: { op: number; objectGuid: string },
  ): Promise<GetNCChangesReply> {
    const stub = await this.conn.call(
      OPNUM.getNCChanges,
      encodeGetNCChanges({
        handle: this.handle,
        ncDn,
        invocationId: state.invocationId,
        highWaterMark: state.highWaterMark,
        upToDateness: state.upToDateness,
        flags,
        maxObjects,
        maxBytes: 8 * 1024 * 1024,
        attids: PHS_ATTIDS,
        ...(prefixTable ? { prefixTable } : {}),
        ...(exop ? { extendedOp: exop.op, objectGuid: exop.objectGuid } : {}),
      }),
    );
    const werror = trailingWerror(stub);
    if (werror === ERROR_DS_DRA_ACCESS_DENIED) throw accessDenied(this.account, ncDn);
    if (werror !== 0) throw drsFailed('IDL_DRSGetNCChanges', werror);
    return decodeGetNCChanges(stub);
  }

  /**
   * Pages of changes since `from` (or everything, without it). When the DC's invocation ID is not
   * the saved one (another DC, or a restored one), the pass restarts from zero and says so.
   */
  async *changes(o: ChangesOptions): AsyncGenerator<ReplicationPage> {
    const maxObjects = o.maxObjects ?? 1000;
    let state: ReplicationState = o.from ?? { invocationId: NIL_GUID, highWaterMark: ZERO_HWM, upToDateness: [] };
    let full = !o.from;
    let restart: { reason: string; rollback: boolean } | undefined;
    for (;;) {
      const reply = await this.getNCChanges(o.ncDn, state, full ? DRS_INIT_SYNC | DRS_WRIT_REP : DRS_WRIT_REP, maxObjects, o.prefixTable);
      if (!full && reply.invocationId !== state.invocationId) {
        // a different DC (or a restore gave it a new invocation ID): its USNs mean nothing to us
        restart = { reason: `the DC's invocation ID is now ${reply.invocationId} (another or a restored DC)`, rollback: false };
        state = { invocationId: reply.invocationId, highWaterMark: ZERO_HWM, upToDateness: [] };
        full = true;
        continue;
      }
      const own = reply.upToDateness.find((c) => c.invocationId === reply.invocationId);
      if (!full && own && own.highestUsn < state.highWaterMark.highestUsn) {
        // The DC's own cursor is behind the USN we already hold: its database went back in time
        // (a snapshot or backup restored without a new invocation ID). Changes it makes now reuse
        // USNs we have passed, so only a pass from zero is safe.
        restart = {
          reason: `the DC's highest USN ${own.highestUsn} is below the saved high-water mark ${state.highWaterMark.highestUsn} (USN rollback: restored from a backup or snapshot?)`,
          rollback: true,
        };
        state = { invocationId: reply.invocationId, highWaterMark: ZERO_HWM, upToDateness: [] };
        full = true;
        continue;
      }
      const users = reply.objects.map((obj) => this.user(obj, reply.prefixes)).filter((u): u is ReplicatedUser => u !== undefined);
      state = {
        invocationId: reply.invocationId,
        highWaterMark: reply.newHighWaterMark,
        upToDateness: reply.moreData ? state.upToDateness : reply.upToDateness.length ? reply.upToDateness : state.upToDateness,
      };
      yield { users, state, more: reply.moreData, objectCount: reply.objects.length, full, ...(restart ? { restartReason: restart.reason, rollback: restart.rollback } : {}) };
      restart = undefined;
      if (!reply.moreData) return;
    }
  }

  /**
   * One object, whole (every attribute of the partial attribute set, the hash included), by its
   * objectGUID: EXOP_REPL_OBJ. For an incremental change that carried only unicodePwd, of a user
   * idsync has not imported yet, whose account type it must know before queuing the hash.
   * Undefined when the DC returns no such object.
   */
  async fetchObject(dn: string, guid: string): Promise<ReplicatedUser | undefined> {
    const state: ReplicationState = { invocationId: NIL_GUID, highWaterMark: ZERO_HWM, upToDateness: [] };
    const reply = await this.getNCChanges(dn, state, DRS_WRIT_REP, 1, undefined, { op: EXOP_REPL_OBJ, objectGuid: guid });
    const obj = reply.objects.find((o) => o.name.guid === guid);
    return obj ? this.user(obj, reply.prefixes) : undefined;
  }

  private user(obj: ReplicatedObject, prefixes: Map<number, Buffer>): ReplicatedUser | undefined {
    const u: ReplicatedUser = { guid: obj.name.guid, dn: obj.name.dn, sid: obj.name.sid, rid: ridFromSid(obj.name.sid) };
    let encrypted: Buffer | undefined;
    for (const a of obj.attrs) {
      const v = a.values[0];
      if (v === undefined) continue;
      switch (canonicalAttid(a.attid, prefixes)) {
        case ATT.unicodePwd:
          encrypted = v;
          break;
        case ATT.objectSid:
          if (u.sid.length === 0) {
            u.sid = v;
            u.rid = ridFromSid(v);
          }
          break;
        case ATT.sAMAccountName:
          u.sAMAccountName = v.toString('utf16le');
          break;
        case ATT.userPrincipalName:
          u.userPrincipalName = v.toString('utf16le');
          break;
        case ATT.userAccountControl:
          if (v.length >= 4) u.userAccountControl = v.readUInt32LE(0);
          break;
        default:
          break;
      }
    }
    if (encrypted && u.rid !== undefined) u.nt = decryptNtHash(this.sessionKey, u.rid, encrypted);
    return u;
  }

  /** DRSUnbind and close; never throws (the connection may already be gone). */
  async close(): Promise<void> {
    try {
      await this.conn.call(OPNUM.unbind, encodeUnbind(this.handle));
    } catch {
      // closing anyway
    } finally {
      this.conn.close();
    }
  }
}

/** Maps a reply ATTRTYP through the reply's prefix table to the numbering in attids.ts. */
export function canonicalAttid(attid: number, prefixes: Map<number, Buffer>): number {
  const index = attid >>> 16;
  const oid = prefixes.get(index);
  if (!oid) return attid;
  return oid.equals(OID_PREFIX_MS_DS_ATTRS) ? (0x00090000 | (attid & 0xffff)) >>> 0 : (0xfff00000 | (attid & 0xffff)) >>> 0;
}
