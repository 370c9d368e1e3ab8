/** NDR codecs of the DRSUAPI messages and the endpoint mapper: layout and clear errors on bad input. */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isIdsyncError } from '../../src/core/errors.js';
import { decodeGetNCChanges, encodeGetNCChanges, ZERO_HWM } from '../../src/drsuapi/messages.js';
import { PHS_ATTIDS } from '../../src/drsuapi/attids.js';
import { decodeEptMapPorts, encodeTcpTower, towerTcpPort } from '../../src/rpc/epm.js';
import { bytesToGuid, guidToBytes, NdrWriter } from '../../src/rpc/ndr.js';

describe('DRSUAPI NDR', () => {
  it('the V8 request puts the DSNAME, the attribute set and the prefix table (with schemaInfo last) where Samba reads them', () => {
    const stub = encodeGetNCChanges({
      handle: Buffer.alloc(20, 1), ncDn: 'DC=lab,DC=test', invocationId: '00000000-0000-0000-0000-000000000000', highWaterMark: ZERO_HWM,
      upToDateness: [], flags: 0x30, maxObjects: 1000, maxBytes: 1 << 23, attids: PHS_ATTIDS,
    });
    assert.equal(stub.readUInt32LE(20), 8, 'dwInVersion');
    assert.equal(stub.readUInt32LE(24), 8, 'union switch');
    assert.equal(stub.readUInt32LE(100), 0x30, 'ulFlags after the 8-aligned high-water mark');
    // the DSNAME follows the 112-byte V8 scalars: max_count = 15 characters + NUL
    assert.equal(stub.readUInt32LE(144), 15);
    assert.equal(stub.subarray(144 + 60, 144 + 60 + 28).toString('utf16le'), 'DC=lab,DC=test');
    // the stub ends with the schemaInfo entry: 0xFF then 20 zero bytes (then padding to 4)
    const tail = stub.subarray(stub.length - 28);
    assert.equal(tail.readUInt32LE(0), 21);
    assert.equal(tail[4], 0xff);
  });

  it('a reply of another version names the structure', () => {
    const w = new NdrWriter().u32(1).u32(1).u32(0).u32(0);
    assert.throws(() => decodeGetNCChanges(w.toBuffer()), (e: unknown) => isIdsyncError(e, 'RPC_NDR_INVALID') && /IDL_DRSGetNCChanges.*GETCHGREPLY_V6 is supported/.test(e.message));
  });

  it('a truncated or garbled reply is a clear RPC_NDR_INVALID naming where it broke, never a crash', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 400 }), (junk) => {
        const head = new NdrWriter().u32(6).u32(6).toBuffer();
        try {
          decodeGetNCChanges(Buffer.concat([head, Buffer.from(junk)]));
        } catch (e) {
          assert.ok(isIdsyncError(e, 'RPC_NDR_INVALID'), String(e));
          assert.match(e.message, /DRS_MSG_GETCHGREPLY_V6/);
        }
      }),
      { seed: 3, numRuns: 300 },
    );
  });

  it('GUIDs round-trip in wire order', () => {
    const g = 'e3514235-4b06-11d1-ab04-00c04fc2dcd2';
    assert.equal(guidToBytes(g).toString('hex'), '354251e3064bd111ab0400c04fc2dcd2');
    assert.equal(bytesToGuid(guidToBytes(g)), g);
  });
});

describe('endpoint mapper', () => {
  it('reads the TCP port (big-endian) from a tower and from an ept_map reply', () => {
    const tower = encodeTcpTower({ uuid: 'e3514235-4b06-11d1-ab04-00c04fc2dcd2', version: 4 });
    assert.equal(towerTcpPort(tower), 0);
    const withPort = Buffer.from(tower);
    // the TCP floor's rhs is the 2 bytes after its lhs (0x07)
    const at = withPort.indexOf(Buffer.from([0x01, 0x00, 0x07, 0x02, 0x00]));
    withPort.writeUInt16BE(49153, at + 5);
    assert.equal(towerTcpPort(withPort), 49153);
    const w = new NdrWriter().bytes(Buffer.alloc(20)).u32(1).u32(4).u32(0).u32(1).pointer(true);
    w.u32(withPort.length).u32(withPort.length).bytes(withPort).align(4).u32(0);
    assert.deepEqual(decodeEptMapPorts(w.toBuffer()), { ports: [49153], status: 0 });
  });
});
