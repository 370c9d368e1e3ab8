/**
 * Connection-oriented DCE/RPC PDUs (C706 chapter 12, MS-RPCE 2.2.2): the 16-byte common header,
 * the bodies of bind / bind_ack / bind_nak / auth3 / request / response / fault, and the
 * sec_trailer (auth verifier) that follows the stub on authenticated PDUs.
 */
import { RpcError } from './errors.js';
import { guidToBytes, bytesToGuid } from './ndr.js';

export const PTYPE = {
  request: 0,
  response: 2,
  fault: 3,
  bind: 11,
  bind_ack: 12,
  bind_nak: 13,
  alter_context: 14,
  alter_context_resp: 15,
  auth3: 16,
  shutdown: 17,
} as const;

export const PFC_FIRST_FRAG = 0x01;
export const PFC_LAST_FRAG = 0x02;

export const AUTH_TYPE_NTLMSSP = 10;
export const AUTH_LEVEL_PKT_PRIVACY = 6;

export const HEADER_SIZE = 16;
export const SEC_TRAILER_SIZE = 8;
export const REQUEST_HEADER_SIZE = HEADER_SIZE + 8;
/** Samba and Windows pad sealed stubs to 16 bytes; both accept it. */
export const AUTH_PAD_ALIGN = 16;

/** NDR 2.0, the only transfer syntax this client offers. */
export const NDR_SYNTAX = { uuid: '8a885d04-1ceb-11c9-9fe8-08002b104860', version: 2 };

export interface SyntaxId {
  uuid: string;
  /** major in the low 16 bits, minor in the high 16 bits (wire order: major u16, minor u16) */
  version: number;
}

export interface PduHeader {
  ptype: number;
  flags: number;
  fragLength: number;
  authLength: number;
  callId: number;
}

export interface AuthVerifier {
  authType: number;
  authLevel: number;
  padLength: number;
  contextId: number;
  value: Buffer;
}

export function encodeHeader(h: PduHeader): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  b[0] = 5;
  b[1] = 0;
  b[2] = h.ptype;
  b[3] = h.flags;
  b.writeUInt32LE(0x00000010, 4); // little-endian integers, ASCII, IEEE floats
  b.writeUInt16LE(h.fragLength, 8);
  b.writeUInt16LE(h.authLength, 10);
  b.writeUInt32LE(h.callId, 12);
  return b;
}

export function decodeHeader(b: Buffer): PduHeader {
  if (b.length < HEADER_SIZE) throw protocolError(`a PDU header needs 16 bytes, got ${b.length}`);
  if (b[0] !== 5 || b[1] !== 0) throw protocolError(`unsupported RPC version ${b[0]}.${b[1]}`);
  if (((b[4] as number) & 0xf0) !== 0x10) throw protocolError('the server sent big-endian NDR, which this client does not speak');
  return { ptype: b[2] as number, flags: b[3] as number, fragLength: b.readUInt16LE(8), authLength: b.readUInt16LE(10), callId: b.readUInt32LE(12) };
}

export function encodeSecTrailer(v: Omit<AuthVerifier, 'value'>): Buffer {
  const b = Buffer.alloc(SEC_TRAILER_SIZE);
  b[0] = v.authType;
  b[1] = v.authLevel;
  b[2] = v.padLength;
  b[3] = 0;
  b.writeUInt32LE(v.contextId, 4);
  return b;
}

/** Splits the verifier off the end of a PDU; returns the body (between header and padding) too. */
export function splitAuth(pdu: Buffer, h: PduHeader, bodyStart: number): { body: Buffer; auth?: AuthVerifier; trailerOffset?: number } {
  if (h.authLength === 0) return { body: pdu.subarray(bodyStart, h.fragLength) };
  const trailerOffset = h.fragLength - h.authLength - SEC_TRAILER_SIZE;
  if (trailerOffset < bodyStart) throw protocolError(`auth_length ${h.authLength} does not fit in a ${h.fragLength}-byte PDU`);
  const t = pdu.subarray(trailerOffset, trailerOffset + SEC_TRAILER_SIZE);
  const auth: AuthVerifier = {
    authType: t[0] as number,
    authLevel: t[1] as number,
    padLength: t[2] as number,
    contextId: t.readUInt32LE(4),
    value: pdu.subarray(trailerOffset + SEC_TRAILER_SIZE, h.fragLength),
  };
  return { body: pdu.subarray(bodyStart, trailerOffset), auth, trailerOffset };
}

function syntax(s: SyntaxId): Buffer {
  const b = Buffer.alloc(20);
  guidToBytes(s.uuid).copy(b, 0);
  b.writeUInt16LE(s.version & 0xffff, 16);
  b.writeUInt16LE(s.version >>> 16, 18);
  return b;
}

/** The bind body: one presentation context (the interface, offered in NDR). */
export function encodeBindBody(o: { maxXmit: number; maxRecv: number; assocGroup: number; contextId: number; abstract: SyntaxId }): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16LE(o.maxXmit, 0);
  b.writeUInt16LE(o.maxRecv, 2);
  b.writeUInt32LE(o.assocGroup, 4);
  b[8] = 1; // n_context_elem
  const ctx = Buffer.alloc(4);
  ctx.writeUInt16LE(o.contextId, 0);
  ctx[2] = 1; // n_transfer_syn
  return Buffer.concat([b, ctx, syntax(o.abstract), syntax(NDR_SYNTAX)]);
}

export interface BindAck {
  maxXmit: number;
  maxRecv: number;
  assocGroup: number;
  result: number;
  reason: number;
  transferSyntax: string;
}

/** Parses a bind_ack body (`body` starts right after the common header). */
export function decodeBindAck(body: Buffer): BindAck {
  if (body.length < 10) throw protocolError('bind_ack too short');
  const maxXmit = body.readUInt16LE(0);
  const maxRecv = body.readUInt16LE(2);
  const assocGroup = body.readUInt32LE(4);
  const addrLen = body.readUInt16LE(8);
  // the secondary address is followed by padding to a 4-byte boundary of the whole PDU
  let off = 10 + addrLen;
  off += (4 - ((HEADER_SIZE + off) % 4)) % 4;
  if (body.length < off + 4 + 24) throw protocolError('bind_ack has no presentation result');
  const n = body[off] as number;
  if (n < 1) throw protocolError('bind_ack carries no presentation result');
  off += 4;
  const result = body.readUInt16LE(off);
  const reason = body.readUInt16LE(off + 2);
  const transferSyntax = bytesToGuid(body.subarray(off + 4, off + 20));
  return { maxXmit, maxRecv, assocGroup, result, reason, transferSyntax };
}

const BIND_NAK_REASONS: Record<number, string> = {
  0: 'reason not specified',
  1: 'temporary congestion',
  2: 'local limit exceeded',
  4: 'protocol version not supported',
  8: 'authentication type not recognized',
  9: 'invalid checksum',
};

export function decodeBindNak(body: Buffer): string {
  const reason = body.length >= 2 ? body.readUInt16LE(0) : 0;
  return `${BIND_NAK_REASONS[reason] ?? 'reason ' + reason}`;
}

export function protocolError(message: string): RpcError {
  return new RpcError('RPC_PROTOCOL_ERROR', `DCE/RPC protocol error: ${message}`, {
    hint: 'The server answered with something that is not valid DCE/RPC here; check that the configured port is the DC\'s RPC endpoint (not LDAP or SMB).',
  });
}
