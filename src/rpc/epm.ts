/**
 * The endpoint mapper (EPMv4 ept_map, C706 Appendix L / MS-RPCE 2.2.1.2): asks port 135 which TCP
 * port an interface listens on. One call on an unauthenticated association.
 */
import { RpcConnection } from './connection.js';
import { RpcError } from './errors.js';
import { NIL_GUID, NdrReader, NdrWriter, guidToBytes } from './ndr.js';
import { NDR_SYNTAX, type SyntaxId } from './pdu.js';

export const EPM_SYNTAX: SyntaxId = { uuid: 'e1af8308-5d1f-11c9-91a4-08002b14a0fa', version: 3 };
const EPT_MAP = 3;

const PROT_RPC_CO = 0x0b;
const PROT_TCP = 0x07;
const PROT_IP = 0x09;
const PROT_UUID = 0x0d;

function floor(lhs: Buffer, rhs: Buffer): Buffer {
  const b = Buffer.alloc(4 + lhs.length + rhs.length);
  b.writeUInt16LE(lhs.length, 0);
  lhs.copy(b, 2);
  b.writeUInt16LE(rhs.length, 2 + lhs.length);
  rhs.copy(b, 4 + lhs.length);
  return b;
}

function uuidFloor(s: SyntaxId): Buffer {
  const lhs = Buffer.alloc(19);
  lhs[0] = PROT_UUID;
  guidToBytes(s.uuid).copy(lhs, 1);
  lhs.writeUInt16LE(s.version & 0xffff, 17);
  const rhs = Buffer.alloc(2);
  rhs.writeUInt16LE(s.version >>> 16, 0);
  return floor(lhs, rhs);
}

/** The tower for "interface over NDR over ncacn_ip_tcp", port and address left zero. */
export function encodeTcpTower(iface: SyntaxId): Buffer {
  const count = Buffer.alloc(2);
  count.writeUInt16LE(5, 0);
  return Buffer.concat([
    count,
    uuidFloor(iface),
    uuidFloor(NDR_SYNTAX),
    floor(Buffer.from([PROT_RPC_CO]), Buffer.alloc(2)),
    floor(Buffer.from([PROT_TCP]), Buffer.alloc(2)),
    floor(Buffer.from([PROT_IP]), Buffer.alloc(4)),
  ]);
}

/** The TCP port in a tower, or undefined when it has none. */
export function towerTcpPort(tower: Buffer): number | undefined {
  if (tower.length < 2) return undefined;
  const n = tower.readUInt16LE(0);
  let off = 2;
  for (let i = 0; i < n && off + 2 <= tower.length; i++) {
    const lhsLen = tower.readUInt16LE(off);
    const proto = tower[off + 2];
    off += 2 + lhsLen;
    if (off + 2 > tower.length) return undefined;
    const rhsLen = tower.readUInt16LE(off);
    if (proto === PROT_TCP && rhsLen === 2) return tower.readUInt16BE(off + 2);
    off += 2 + rhsLen;
  }
  return undefined;
}

export function encodeEptMap(iface: SyntaxId, maxTowers = 4): Buffer {
  const tower = encodeTcpTower(iface);
  const w = new NdrWriter();
  w.pointer(true).guid(NIL_GUID); // object
  w.pointer(true).u32(tower.length).u32(tower.length).bytes(tower).align(4); // map_tower
  w.u32(0).bytes(Buffer.alloc(16)); // entry_handle
  w.u32(maxTowers);
  return w.toBuffer();
}

export function decodeEptMapPorts(stub: Buffer): { ports: number[]; status: number } {
  const r = new NdrReader(stub);
  return r.in('ept_map', () => {
    r.bytes(20); // entry_handle
    const numTowers = r.u32();
    r.u32(); // max_count
    r.u32(); // offset
    const actual = r.count('actual_count', 64);
    if (actual !== numTowers) r.fail(`actual_count ${actual} does not match num_towers ${numTowers}`);
    const present = Array.from({ length: actual }, () => r.u32() !== 0);
    const ports: number[] = [];
    for (const p of present) {
      if (!p) continue;
      const len = r.u32();
      const len2 = r.count('tower_length', 4096);
      r.expectConformance(len, len2, 'tower_length');
      const port = towerTcpPort(Buffer.from(r.bytes(len2)));
      r.align(4);
      if (port !== undefined) ports.push(port);
    }
    const status = r.u32();
    return { ports, status };
  });
}

/** Asks the endpoint mapper at host:epmPort for the TCP port of `iface`. */
export async function lookupTcpPort(host: string, iface: SyntaxId, opts: { epmPort?: number; timeoutMs?: number } = {}): Promise<number> {
  const port = opts.epmPort ?? 135;
  const c = await RpcConnection.connect({ host, port, role: 'endpoint mapper', ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}) });
  try {
    await c.bind(EPM_SYNTAX);
    const { ports, status } = decodeEptMapPorts(await c.call(EPT_MAP, encodeEptMap(iface)));
    const found = ports[0];
    if (status !== 0 || found === undefined) {
      throw new RpcError('RPC_ENDPOINT_NOT_FOUND', `the endpoint mapper at ${host}:${port} knows no TCP endpoint for interface ${iface.uuid} (status 0x${status.toString(16)})`, {
        hint: 'The DC does not offer this RPC interface over TCP. On Samba, make sure "server services" includes rpc.',
        details: { host, port, interface: iface.uuid },
      });
    }
    return found;
  } finally {
    c.close();
  }
}
