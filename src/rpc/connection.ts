/**
 * One DCE/RPC association over TCP (ncacn_ip_tcp): connect, bind one interface (optionally with
 * NTLM at packet privacy), then calls one at a time. Requests larger than the negotiated fragment
 * size are split; response fragments are verified and decrypted one by one and reassembled.
 */
import { Socket, connect as tcpConnect } from 'node:net';
import { RpcError, faultName } from './errors.js';
import {
  AUTH_LEVEL_PKT_PRIVACY,
  AUTH_PAD_ALIGN,
  AUTH_TYPE_NTLMSSP,
  HEADER_SIZE,
  PFC_FIRST_FRAG,
  PFC_LAST_FRAG,
  PTYPE,
  REQUEST_HEADER_SIZE,
  SEC_TRAILER_SIZE,
  decodeBindAck,
  decodeBindNak,
  decodeHeader,
  encodeBindBody,
  encodeHeader,
  encodeSecTrailer,
  protocolError,
  splitAuth,
  type PduHeader,
  type SyntaxId,
} from './pdu.js';
import { authenticate, decodeChallenge, encodeNegotiate, type NtlmCredentials, type NtlmSecurityContext } from './ntlm.js';

export interface RpcConnectOptions {
  host: string;
  port: number;
  /** Connect and per-call timeout (default 60 s). */
  timeoutMs?: number;
  /** What the port is, for error messages ("endpoint mapper", "DRSUAPI"). */
  role?: string;
  /** Largest fragment we offer to receive and send (default 5840, as Windows does). */
  maxFrag?: number;
  /** For tests: sees every PDU as sent and as received (before decryption). */
  tap?: (direction: 'out' | 'in', pdu: Buffer) => void;
  /** For replaying captures: the NTLM client challenge and session key source (default randomBytes). */
  ntlmRandom?: (n: number) => Buffer;
}

const AUTH_CONTEXT_ID = 0x10;
const SIGNATURE_SIZE = 16;

export class RpcConnection {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private waiting: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private closedError: Error | undefined;
  private callId = 1;
  private maxXmit = 0;
  private contextId = 0;
  private security: NtlmSecurityContext | undefined;
  /** No call has completed since the NTLM bind: a fault now means the credentials were refused. */
  private authUnconfirmed = false;

  private constructor(
    private readonly socket: Socket,
    private readonly opts: RpcConnectOptions,
  ) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.buffered += d.length;
      this.pump();
    });
    const onEnd = (err?: Error): void => {
      this.closedError ??= new RpcError('RPC_UNREACHABLE', `the ${this.role} connection to ${opts.host}:${opts.port} closed${err ? `: ${err.message}` : ''}`, {
        hint: 'The DC closed the connection (restart, idle timeout, or it refused the credentials). idsync reconnects at the next poll.',
        details: { host: opts.host, port: opts.port },
      });
      const w = this.waiting;
      this.waiting = undefined;
      w?.reject(this.closedError);
    };
    socket.on('error', onEnd);
    socket.on('close', () => onEnd());
  }

  private get role(): string {
    return this.opts.role ?? 'RPC';
  }

  /** The NTLM exported session key (MS-DRSR decrypts secrets with it), once bound with auth. */
  get sessionKey(): Buffer | undefined {
    return this.security?.exportedSessionKey;
  }

  static connect(opts: RpcConnectOptions): Promise<RpcConnection> {
    const timeoutMs = opts.timeoutMs ?? 60000;
    return new Promise((resolve, reject) => {
      const s = tcpConnect({ host: opts.host, port: opts.port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(unreachable(opts, `no answer within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        s.setNoDelay(true);
        resolve(new RpcConnection(s, opts));
      });
      s.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(unreachable(opts, err.code ?? err.message));
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private pump(): void {
    if (!this.waiting || this.buffered < HEADER_SIZE) return;
    const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    this.chunks.length = 0;
    this.chunks.push(all);
    const fragLength = all.readUInt16LE(8);
    if (fragLength < HEADER_SIZE) {
      const w = this.waiting;
      this.waiting = undefined;
      w.reject(protocolError(`frag_length ${fragLength} is shorter than a header`));
      this.socket.destroy();
      return;
    }
    if (all.length < fragLength) return;
    const pdu = Buffer.from(all.subarray(0, fragLength));
    const rest = all.subarray(fragLength);
    this.chunks.length = 0;
    if (rest.length) this.chunks.push(rest);
    this.buffered = rest.length;
    const w = this.waiting;
    this.waiting = undefined;
    this.opts.tap?.('in', pdu);
    w.resolve(pdu);
  }

  private readPdu(): Promise<Buffer> {
    if (this.closedError && this.buffered === 0) return Promise.reject(this.closedError);
    const timeoutMs = this.opts.timeoutMs ?? 60000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(new RpcError('RPC_TIMEOUT', `the ${this.role} server at ${this.opts.host}:${this.opts.port} did not answer within ${Math.round(timeoutMs / 1000)} s`, {
          hint: 'The DC is overloaded or a firewall drops packets mid-connection; idsync retries at the next poll.',
          details: { host: this.opts.host, port: this.opts.port },
        }));
        this.socket.destroy();
      }, timeoutMs);
      this.waiting = {
        resolve: (b) => {
          clearTimeout(timer);
          resolve(b);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.pump();
    });
  }

  private send(pdu: Buffer): void {
    this.opts.tap?.('out', pdu);
    this.socket.write(pdu);
  }

  /** Binds `abstract`; with `auth`, runs the three NTLM legs (bind, bind_ack, auth3) at packet privacy. */
  async bind(abstract: SyntaxId, auth?: NtlmCredentials): Promise<void> {
    const maxFrag = this.opts.maxFrag ?? 5840;
    const body = encodeBindBody({ maxXmit: maxFrag, maxRecv: maxFrag, assocGroup: 0, contextId: this.contextId, abstract });
    const callId = this.callId++;
    const authValue = auth ? encodeNegotiate() : undefined;
    this.send(this.pdu(PTYPE.bind, PFC_FIRST_FRAG | PFC_LAST_FRAG, callId, body, authValue, 0));
    const reply = await this.readPdu();
    const h = decodeHeader(reply);
    if (h.ptype === PTYPE.bind_nak) {
      throw new RpcError('RPC_BIND_REJECTED', `the ${this.role} server refused the bind: ${decodeBindNak(reply.subarray(HEADER_SIZE))}`, {
        hint: auth ? 'The DC refused NTLM for RPC; check that NTLM is allowed for this account (Network security: Restrict NTLM).' : 'The server does not offer this interface.',
      });
    }
    if (h.ptype !== PTYPE.bind_ack) throw protocolError(`expected bind_ack, got PDU type ${h.ptype}`);
    const { body: ackBody, auth: ackAuth } = splitAuth(reply, h, HEADER_SIZE);
    const ack = decodeBindAck(ackBody);
    if (ack.result !== 0) {
      throw new RpcError('RPC_BIND_REJECTED', `the ${this.role} server rejected the presentation context (result ${ack.result}, reason ${ack.reason})`, {
        hint: 'The server does not offer this interface over NDR on this port; check the port (the endpoint mapper names the right one).',
      });
    }
    this.maxXmit = Math.min(ack.maxXmit, maxFrag);
    if (!auth) return;
    if (!ackAuth || ackAuth.authType !== AUTH_TYPE_NTLMSSP) throw protocolError('bind_ack carries no NTLM challenge');
    const { message, context } = await authenticate(auth, decodeChallenge(Buffer.from(ackAuth.value)), this.opts.ntlmRandom);
    // auth3: 4 bytes of padding, then the verifier with the AUTHENTICATE message; no answer comes
    this.send(this.pdu(PTYPE.auth3, PFC_FIRST_FRAG | PFC_LAST_FRAG, callId, Buffer.alloc(4), message, 0));
    this.security = context;
    this.authUnconfirmed = true;
  }

  private pdu(ptype: number, flags: number, callId: number, body: Buffer, authValue: Buffer | undefined, padLength: number): Buffer {
    const trailer = authValue ? encodeSecTrailer({ authType: AUTH_TYPE_NTLMSSP, authLevel: AUTH_LEVEL_PKT_PRIVACY, padLength, contextId: AUTH_CONTEXT_ID }) : Buffer.alloc(0);
    const authLength = authValue?.length ?? 0;
    const fragLength = HEADER_SIZE + body.length + trailer.length + authLength;
    const header = encodeHeader({ ptype, flags, fragLength, authLength, callId });
    return Buffer.concat([header, body, trailer, authValue ?? Buffer.alloc(0)]);
  }

  /** Calls operation `opnum` with an NDR stub; returns the response stub (reassembled, decrypted). */
  async call(opnum: number, stub: Buffer): Promise<Buffer> {
    if (this.maxXmit === 0) throw protocolError('call before bind');
    const callId = this.callId++;
    const overhead = REQUEST_HEADER_SIZE + (this.security ? SEC_TRAILER_SIZE + SIGNATURE_SIZE + AUTH_PAD_ALIGN : 0);
    const room = Math.floor((this.maxXmit - overhead) / AUTH_PAD_ALIGN) * AUTH_PAD_ALIGN;
    if (room <= 0) throw protocolError(`negotiated fragment size ${this.maxXmit} is too small`);
    let off = 0;
    do {
      const chunk = stub.subarray(off, off + room);
      const flags = (off === 0 ? PFC_FIRST_FRAG : 0) | (off + chunk.length >= stub.length ? PFC_LAST_FRAG : 0);
      this.send(this.requestFragment(callId, opnum, chunk, stub.length - off, flags));
      off += chunk.length;
    } while (off < stub.length);
    const response = await this.readResponse(callId);
    this.authUnconfirmed = false;
    return response;
  }

  private requestFragment(callId: number, opnum: number, chunk: Buffer, allocHint: number, flags: number): Buffer {
    const fields = Buffer.alloc(8);
    fields.writeUInt32LE(allocHint, 0);
    fields.writeUInt16LE(this.contextId, 4);
    fields.writeUInt16LE(opnum, 6);
    if (!this.security) {
      const header = encodeHeader({ ptype: PTYPE.request, flags, fragLength: REQUEST_HEADER_SIZE + chunk.length, authLength: 0, callId });
      return Buffer.concat([header, fields, chunk]);
    }
    const padLength = (AUTH_PAD_ALIGN - (chunk.length % AUTH_PAD_ALIGN)) % AUTH_PAD_ALIGN;
    const plain = Buffer.concat([chunk, Buffer.alloc(padLength)]);
    const trailer = encodeSecTrailer({ authType: AUTH_TYPE_NTLMSSP, authLevel: AUTH_LEVEL_PKT_PRIVACY, padLength, contextId: AUTH_CONTEXT_ID });
    const fragLength = REQUEST_HEADER_SIZE + plain.length + SEC_TRAILER_SIZE + SIGNATURE_SIZE;
    const header = encodeHeader({ ptype: PTYPE.request, flags, fragLength, authLength: SIGNATURE_SIZE, callId });
    const { sealed, signature } = this.security.seal(plain, Buffer.concat([header, fields, plain, trailer]));
    return Buffer.concat([header, fields, sealed, trailer, signature]);
  }

  private async readResponse(callId: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (;;) {
      const pdu = await this.readPdu();
      const h = decodeHeader(pdu);
      if (h.callId !== callId) throw protocolError(`response for call ${h.callId} while waiting for call ${callId}`);
      if (h.ptype === PTYPE.fault) throw this.fault(pdu, h);
      if (h.ptype !== PTYPE.response) throw protocolError(`expected a response, got PDU type ${h.ptype}`);
      parts.push(this.responseStub(pdu, h));
      if (h.flags & PFC_LAST_FRAG) break;
    }
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  }

  private responseStub(pdu: Buffer, h: PduHeader): Buffer {
    if (h.fragLength < REQUEST_HEADER_SIZE) throw protocolError('response PDU too short');
    if (!this.security) {
      if (h.authLength !== 0) throw protocolError('unexpected auth verifier on an unauthenticated response');
      return pdu.subarray(REQUEST_HEADER_SIZE, h.fragLength);
    }
    const { body, auth, trailerOffset } = splitAuth(pdu, h, REQUEST_HEADER_SIZE);
    if (!auth || trailerOffset === undefined || auth.authLevel !== AUTH_LEVEL_PKT_PRIVACY) {
      throw new RpcError('RPC_INTEGRITY_FAILED', 'a response from the DC was not sealed', { hint: 'The DC downgraded the protection level; idsync refuses unsealed replies.' });
    }
    const plain = this.security.unseal(Buffer.from(body), auth.value, (p) =>
      Buffer.concat([pdu.subarray(0, REQUEST_HEADER_SIZE), p, pdu.subarray(trailerOffset, h.fragLength - h.authLength)]),
    );
    if (auth.padLength > plain.length) throw protocolError('auth_pad_length exceeds the stub');
    return plain.subarray(0, plain.length - auth.padLength);
  }

  private fault(pdu: Buffer, h: PduHeader): RpcError {
    const status = h.fragLength >= REQUEST_HEADER_SIZE + 4 ? pdu.readUInt32LE(REQUEST_HEADER_SIZE) : 0;
    // Windows answers a refused NTLM AUTHENTICATE with access denied on the first call, Samba
    // with a protocol error; either way the three legs themselves never say so.
    const denied = status === 5 || (this.authUnconfirmed && status === 0x1c01000b);
    return new RpcError(denied ? 'RPC_AUTH_FAILED' : 'RPC_FAULT', `the ${this.role} server answered with a fault: ${faultName(status)}`, {
      status,
      hint: denied
        ? 'The DC did not accept the credentials for RPC (wrong password, locked or disabled account, or NTLM refused): check the connector\'s bind account and password (`idsync credentials set <connector>`).'
        : 'The DC could not process the call; the event names the status. Check the DC\'s own logs at the same time.',
      details: { status: `0x${status.toString(16).padStart(8, '0')}` },
    });
  }
}

function unreachable(opts: RpcConnectOptions, why: string): RpcError {
  const role = opts.role ?? 'RPC';
  return new RpcError('RPC_UNREACHABLE', `cannot reach the ${role} port ${opts.host}:${opts.port} (${why})`, {
    hint:
      `Allow TCP ${opts.port} from this host to the DC` +
      (opts.port === 135
        ? ' and the dynamic RPC range (49152–65535 by default), or pin DRSUAPI to one port on the DC and set passwords.rpcPort'
        : '') +
      '. On Windows: New-NetFirewallRule -Direction Inbound -Protocol TCP -LocalPort <port> -Action Allow; on Samba check "server services" includes rpc.',
    details: { host: opts.host, port: opts.port, role },
  });
}
