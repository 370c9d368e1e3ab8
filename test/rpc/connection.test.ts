/**
 * Request fragmentation and response reassembly. Samba and Windows never negotiate fragments small
 * enough to split idsync's requests (a few hundred bytes), so this uses a minimal loopback peer
 * that acks the bind with max_xmit_frag 64 and answers in 100-byte fragments. (The sealed,
 * multi-fragment replies of a real DC are covered by test/drsuapi/replay.test.ts.)
 */
import { strict as assert } from 'node:assert';
import { createServer, type AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { RpcConnection } from '../../src/rpc/connection.js';
import { isIdsyncError } from '../../src/core/errors.js';
import { encodeHeader, PFC_FIRST_FRAG, PFC_LAST_FRAG, PTYPE } from '../../src/rpc/pdu.js';

const IFACE = { uuid: '12345678-1234-abcd-ef00-0123456789ab', version: 1 };

function peer(onRequest: (stub: Buffer, opnum: number) => Buffer | { fault: number }): Promise<{ port: number; close(): void; fragmentsIn: number[] }> {
  const fragmentsIn: number[] = [];
  const server = createServer((sock) => {
    let buf = Buffer.alloc(0);
    let stub: Buffer[] = [];
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 16 && buf.length >= buf.readUInt16LE(8)) {
        const len = buf.readUInt16LE(8);
        const pdu = buf.subarray(0, len);
        buf = buf.subarray(len);
        const callId = pdu.readUInt32LE(12);
        if (pdu[2] === PTYPE.bind) {
          const body = Buffer.alloc(4 + 4 + 2 + 2 + 4 + 24);
          body.writeUInt16LE(64, 0); // max_xmit_frag
          body.writeUInt16LE(64, 2);
          body.writeUInt32LE(0x1234, 4);
          body.writeUInt16LE(0, 8); // no secondary address (+2 bytes padding to 4)
          body[12] = 1; // one result: acceptance
          sock.write(Buffer.concat([encodeHeader({ ptype: PTYPE.bind_ack, flags: 3, fragLength: 16 + body.length, authLength: 0, callId }), body]));
        } else if (pdu[2] === PTYPE.request) {
          fragmentsIn.push(len);
          stub.push(pdu.subarray(24));
          if (!(pdu[3]! & PFC_LAST_FRAG)) continue;
          const answer = onRequest(Buffer.concat(stub), pdu.readUInt16LE(22));
          stub = [];
          if ('fault' in answer) {
            const body = Buffer.alloc(16);
            body.writeUInt32LE(answer.fault, 8);
            sock.write(Buffer.concat([encodeHeader({ ptype: PTYPE.fault, flags: 3, fragLength: 32, authLength: 0, callId }), body]));
            continue;
          }
          for (let off = 0; off < answer.length || off === 0; off += 100) {
            const part = answer.subarray(off, off + 100);
            const flags = (off === 0 ? PFC_FIRST_FRAG : 0) | (off + 100 >= answer.length ? PFC_LAST_FRAG : 0);
            const fields = Buffer.alloc(8);
            fields.writeUInt32LE(answer.length - off, 0);
            sock.write(Buffer.concat([encodeHeader({ ptype: PTYPE.response, flags, fragLength: 24 + part.length, authLength: 0, callId }), fields, part]));
            if (answer.length === 0) break;
          }
        }
      }
    });
    sock.on('error', () => undefined);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as AddressInfo).port, close: () => server.close(), fragmentsIn })));
}

describe('DCE/RPC fragments', () => {
  it('splits a request into fragments within max_xmit_frag and reassembles a multi-fragment response', async () => {
    const p = await peer((stub) => Buffer.concat([stub, stub])); // echo twice: 2 × 300 bytes back
    const c = await RpcConnection.connect({ host: '127.0.0.1', port: p.port });
    try {
      await c.bind(IFACE);
      const stub = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
      const reply = await c.call(7, stub);
      assert.deepEqual(reply, Buffer.concat([stub, stub]));
      assert.ok(p.fragmentsIn.length >= 5, `${p.fragmentsIn.length} request fragments`);
      for (const len of p.fragmentsIn) assert.ok(len <= 64, `fragment of ${len} bytes`);
    } finally {
      c.close();
      p.close();
    }
  });

  it('a fault is a named error with its status', async () => {
    const p = await peer(() => ({ fault: 0x1c010002 }));
    const c = await RpcConnection.connect({ host: '127.0.0.1', port: p.port, role: 'test' });
    try {
      await c.bind(IFACE);
      await assert.rejects(c.call(99, Buffer.alloc(8)), (e: unknown) => isIdsyncError(e, 'RPC_FAULT') && /nca_s_op_rng_error/.test(e.message));
    } finally {
      c.close();
      p.close();
    }
  });
});
