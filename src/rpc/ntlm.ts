/**
 * NTLMSSP client for DCE/RPC (MS-NLMP): NTLMv2 responses, extended session security, 128-bit
 * key exchange, and sign + seal of each PDU (packet privacy) with one RC4 state and one sequence
 * number per direction. No MIC is sent (the client's target info is the server's, unchanged), which
 * Windows and Samba accept for DCE/RPC.
 *
 * The password is used once, to derive the NT hash; keys stay in this object, which the
 * connection drops on close. Nothing here logs or returns key material except exportedSessionKey,
 * which MS-DRSR needs to decrypt replicated secrets.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { Rc4, hmacMd5, md5, ntOwfV1, rc4 } from './crypto.js';
import { RpcError } from './errors.js';

export const NTLMSSP_NEGOTIATE_UNICODE = 0x00000001;
export const NTLMSSP_REQUEST_TARGET = 0x00000004;
export const NTLMSSP_NEGOTIATE_SIGN = 0x00000010;
export const NTLMSSP_NEGOTIATE_SEAL = 0x00000020;
export const NTLMSSP_NEGOTIATE_NTLM = 0x00000200;
export const NTLMSSP_NEGOTIATE_ALWAYS_SIGN = 0x00008000;
export const NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY = 0x00080000;
export const NTLMSSP_NEGOTIATE_TARGET_INFO = 0x00800000;
export const NTLMSSP_NEGOTIATE_128 = 0x20000000;
export const NTLMSSP_NEGOTIATE_KEY_EXCH = 0x40000000;
export const NTLMSSP_NEGOTIATE_56 = 0x80000000;

/** What this client asks for and requires: sign, seal, ESS, 128-bit, key exchange. */
export const CLIENT_FLAGS =
  (NTLMSSP_NEGOTIATE_UNICODE |
    NTLMSSP_REQUEST_TARGET |
    NTLMSSP_NEGOTIATE_SIGN |
    NTLMSSP_NEGOTIATE_SEAL |
    NTLMSSP_NEGOTIATE_NTLM |
    NTLMSSP_NEGOTIATE_ALWAYS_SIGN |
    NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY |
    NTLMSSP_NEGOTIATE_TARGET_INFO |
    NTLMSSP_NEGOTIATE_128 |
    NTLMSSP_NEGOTIATE_KEY_EXCH |
    NTLMSSP_NEGOTIATE_56) >>>
  0;

const REQUIRED = NTLMSSP_NEGOTIATE_SIGN | NTLMSSP_NEGOTIATE_SEAL | NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY | NTLMSSP_NEGOTIATE_128 | NTLMSSP_NEGOTIATE_KEY_EXCH;

const SIGNATURE = Buffer.from('NTLMSSP\0', 'latin1');
const MSV_AV_EOL = 0;
const MSV_AV_TIMESTAMP = 7;

export interface NtlmCredentials {
  user: string;
  domain: string;
  password: string;
  workstation?: string;
}

export interface NtlmChallenge {
  flags: number;
  serverChallenge: Buffer;
  targetInfo: Buffer;
  /** MsvAvTimestamp from the target info, when present (FILETIME). */
  timestamp?: Buffer;
}

function authError(message: string): RpcError {
  return new RpcError('RPC_PROTOCOL_ERROR', `NTLM: ${message}`, { hint: 'The server\'s NTLM challenge could not be used; check that the port is the DC\'s RPC endpoint.' });
}

export function encodeNegotiate(flags = CLIENT_FLAGS): Buffer {
  const b = Buffer.alloc(32);
  SIGNATURE.copy(b, 0);
  b.writeUInt32LE(1, 8);
  b.writeUInt32LE(flags >>> 0, 12);
  // empty domain and workstation fields, pointing at the end of the message
  b.writeUInt32LE(32, 20);
  b.writeUInt32LE(32, 28);
  return b;
}

export function decodeChallenge(b: Buffer): NtlmChallenge {
  if (b.length < 48 || !b.subarray(0, 8).equals(SIGNATURE) || b.readUInt32LE(8) !== 2) throw authError('not a CHALLENGE_MESSAGE');
  const flags = b.readUInt32LE(20);
  const serverChallenge = Buffer.from(b.subarray(24, 32));
  const tiLen = b.readUInt16LE(40);
  const tiOff = b.readUInt32LE(44);
  if (tiOff + tiLen > b.length) throw authError('target info outside the message');
  const targetInfo = Buffer.from(b.subarray(tiOff, tiOff + tiLen));
  let timestamp: Buffer | undefined;
  for (let off = 0; off + 4 <= targetInfo.length; ) {
    const id = targetInfo.readUInt16LE(off);
    const len = targetInfo.readUInt16LE(off + 2);
    if (id === MSV_AV_EOL) break;
    if (id === MSV_AV_TIMESTAMP && len === 8) timestamp = Buffer.from(targetInfo.subarray(off + 4, off + 12));
    off += 4 + len;
  }
  return timestamp ? { flags, serverChallenge, targetInfo, timestamp } : { flags, serverChallenge, targetInfo };
}

function filetimeNow(): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE((BigInt(Date.now()) + 11644473600000n) * 10000n);
  return b;
}

/** Keys and state of an established NTLM security context. */
export class NtlmSecurityContext {
  private readonly clientSign: Buffer;
  private readonly serverSign: Buffer;
  private readonly clientSeal: Rc4;
  private readonly serverSeal: Rc4;
  private sendSeq = 0;
  private recvSeq = 0;

  constructor(readonly exportedSessionKey: Buffer) {
    const k = exportedSessionKey;
    this.clientSign = md5(k, Buffer.from('session key to client-to-server signing key magic constant\0', 'latin1'));
    this.serverSign = md5(k, Buffer.from('session key to server-to-client signing key magic constant\0', 'latin1'));
    this.clientSeal = new Rc4(md5(k, Buffer.from('session key to client-to-server sealing key magic constant\0', 'latin1')));
    this.serverSeal = new Rc4(md5(k, Buffer.from('session key to server-to-client sealing key magic constant\0', 'latin1')));
  }

  /**
   * Seals `plain` (the stub plus its padding) and signs `wholePdu(plain)` (the PDU as it will be
   * sent, with the plaintext stub, up to and including the sec_trailer). Returns the encrypted
   * stub and the 16-byte signature.
   */
  seal(plain: Buffer, wholePdu: Buffer): { sealed: Buffer; signature: Buffer } {
    const seq = Buffer.alloc(4);
    seq.writeUInt32LE(this.sendSeq);
    const mac = hmacMd5(this.clientSign, seq, wholePdu).subarray(0, 8);
    const sealed = this.clientSeal.update(plain);
    const checksum = this.clientSeal.update(mac);
    this.sendSeq = (this.sendSeq + 1) >>> 0;
    return { sealed, signature: Buffer.concat([Buffer.from([1, 0, 0, 0]), checksum, seq]) };
  }

  /**
   * Decrypts a sealed stub and checks its signature over the whole PDU rebuilt with the plaintext
   * (`wholePdu(plain)`). Throws RPC_INTEGRITY_FAILED when it does not verify.
   */
  unseal(sealed: Buffer, signature: Buffer, wholePdu: (plain: Buffer) => Buffer): Buffer {
    if (signature.length !== 16 || signature.readUInt32LE(0) !== 1) {
      throw new RpcError('RPC_INTEGRITY_FAILED', 'the server\'s NTLM signature is malformed', { hint: 'Something between idsync and the DC altered the traffic, or the server is not a Windows/Samba DC.' });
    }
    const plain = this.serverSeal.update(sealed);
    const seq = Buffer.alloc(4);
    seq.writeUInt32LE(this.recvSeq);
    const expected = hmacMd5(this.serverSign, seq, wholePdu(plain)).subarray(0, 8);
    const checksum = this.serverSeal.update(signature.subarray(4, 12));
    const ok = timingSafeEqual(expected, checksum) && signature.subarray(12, 16).equals(seq);
    this.recvSeq = (this.recvSeq + 1) >>> 0;
    if (!ok) {
      throw new RpcError('RPC_INTEGRITY_FAILED', 'a response from the DC failed its NTLM signature check', {
        hint: 'The traffic was altered in transit or the session got out of step; idsync reconnects at the next poll.',
      });
    }
    return plain;
  }
}

/**
 * Builds the AUTHENTICATE_MESSAGE for a challenge and returns it with the security context it
 * establishes. `random` is for tests (client challenge and session key); production uses
 * randomBytes.
 */
export async function authenticate(
  creds: NtlmCredentials,
  challenge: NtlmChallenge,
  random: (n: number) => Buffer = randomBytes,
  now: () => Buffer = filetimeNow,
): Promise<{ message: Buffer; context: NtlmSecurityContext }> {
  const missing = REQUIRED & ~challenge.flags;
  if (missing !== 0) {
    throw new RpcError('RPC_AUTH_FAILED', `the server does not offer NTLM flags 0x${missing.toString(16)} (sign, seal, extended session security, 128-bit, key exchange are required)`, {
      hint: 'Allow NTLMv2 with 128-bit session security on the DC (Network security: Minimum session security for NTLM SSP).',
    });
  }
  const flags = (CLIENT_FLAGS & challenge.flags) >>> 0;
  const ntHash = await ntOwfV1(creds.password);
  const responseKeyNt = hmacMd5(ntHash, Buffer.from(creds.user.toUpperCase() + creds.domain, 'utf16le'));
  const clientChallenge = random(8);
  const temp = Buffer.concat([
    Buffer.from([1, 1, 0, 0, 0, 0, 0, 0]),
    challenge.timestamp ?? now(),
    clientChallenge,
    Buffer.alloc(4),
    challenge.targetInfo,
    Buffer.alloc(4),
  ]);
  const ntProof = hmacMd5(responseKeyNt, challenge.serverChallenge, temp);
  const ntResponse = Buffer.concat([ntProof, temp]);
  // With a server timestamp, MS-NLMP 3.1.5.1.2 has the client send Z(24) as the LM response.
  const lmResponse = challenge.timestamp ? Buffer.alloc(24) : Buffer.concat([hmacMd5(responseKeyNt, challenge.serverChallenge, clientChallenge), clientChallenge]);
  const sessionBaseKey = hmacMd5(responseKeyNt, ntProof);
  const exportedSessionKey = random(16);
  const encryptedSessionKey = rc4(sessionBaseKey, exportedSessionKey);

  const domain = Buffer.from(creds.domain, 'utf16le');
  const user = Buffer.from(creds.user, 'utf16le');
  const workstation = Buffer.from(creds.workstation ?? '', 'utf16le');
  const payload = [lmResponse, ntResponse, domain, user, workstation, encryptedSessionKey];
  const head = Buffer.alloc(64);
  SIGNATURE.copy(head, 0);
  head.writeUInt32LE(3, 8);
  let off = 64;
  const fieldAt = [12, 20, 28, 36, 44, 52];
  payload.forEach((p, i) => {
    const at = fieldAt[i] as number;
    head.writeUInt16LE(p.length, at);
    head.writeUInt16LE(p.length, at + 2);
    head.writeUInt32LE(off, at + 4);
    off += p.length;
  });
  head.writeUInt32LE(flags, 60);
  return { message: Buffer.concat([head, ...payload]), context: new NtlmSecurityContext(exportedSessionKey) };
}
