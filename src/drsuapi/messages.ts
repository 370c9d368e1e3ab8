/**
 * NDR encoding of the three DRSUAPI calls idsync makes (MS-DRSR 4.1.3 IDL_DRSBind, 4.1.25
 * IDL_DRSUnbind, 4.1.10 IDL_DRSGetNCChanges with DRS_MSG_GETCHGREQ_V8 / DRS_MSG_GETCHGREPLY_V6).
 *
 * Layout rules that matter here (C706 §14): a structure's scalars come first (pointers as referent
 * IDs), then its referents in member order; a conformant structure starts with its max_count;
 * structures holding a 64-bit integer are 8-aligned at both ends. The REPLENTINFLIST chain
 * therefore arrives as every entry's scalars first and then the entries' own referents from the
 * LAST entry back to the first; it is read in a loop, never by recursion.
 */
import { NdrReader, NdrWriter, NIL_GUID } from '../rpc/ndr.js';
import { OID_PREFIX_MS_DS_ATTRS, PREFIX_INDEX_MS_DS_ATTRS, SCHEMA_INFO_ENTRY } from './attids.js';

export const DRSUAPI_SYNTAX = { uuid: 'e3514235-4b06-11d1-ab04-00c04fc2dcd2', version: 4 };
/** NTDSAPI_CLIENT_GUID: the bind GUID of a client that is not a DC (MS-DRSR 5.138). */
export const NTDSAPI_CLIENT_GUID = 'e24d201a-4fd6-11d1-a3da-0000f875ae0d';

export const OPNUM = { bind: 0, unbind: 1, getNCChanges: 3 } as const;

export const DRS_INIT_SYNC = 0x00000020;
export const DRS_WRIT_REP = 0x00000010;

/**
 * DRS_EXTENSIONS we advertise: everything up to GETCHGREPLY_V6 except compression (a compressed
 * reply would be V7) and without GETCHGREPLY_V9 (MS-DRSR would then answer V9).
 */
export const CLIENT_EXTENSIONS = 0x07ffffef;
export const EXT_GETCHGREQ_V8 = 0x01000000;
export const EXT_STRONG_ENCRYPTION = 0x00008000;

export interface HighWaterMark {
  tmpHighestUsn: bigint;
  reservedUsn: bigint;
  highestUsn: bigint;
}

export const ZERO_HWM: HighWaterMark = { tmpHighestUsn: 0n, reservedUsn: 0n, highestUsn: 0n };

export interface Cursor {
  invocationId: string;
  highestUsn: bigint;
}

export interface DsName {
  guid: string;
  sid: Buffer;
  dn: string;
}

export interface AttrValue {
  attid: number;
  values: Buffer[];
}

export interface ReplicatedObject {
  name: DsName;
  attrs: AttrValue[];
}

export interface GetNCChangesReply {
  sourceDsaGuid: string;
  invocationId: string;
  newHighWaterMark: HighWaterMark;
  upToDateness: Cursor[];
  /** prefix index → partial binary OID, from the reply's prefix table */
  prefixes: Map<number, Buffer>;
  objects: ReplicatedObject[];
  moreData: boolean;
  objectCount: number;
}

// ---------------------------------------------------------------------------------------------
// DRSBind / DRSUnbind

export function encodeBind(extFlags = CLIENT_EXTENSIONS, pid = 0): Buffer {
  const ext = Buffer.alloc(28);
  ext.writeUInt32LE(extFlags >>> 0, 0);
  ext.writeUInt32LE(pid >>> 0, 20);
  const w = new NdrWriter();
  w.pointer(true).guid(NTDSAPI_CLIENT_GUID);
  w.pointer(true).u32(ext.length).u32(ext.length).bytes(ext);
  return w.toBuffer();
}

export interface BindReply {
  handle: Buffer;
  extFlags: number;
  replEpoch: number;
  werror: number;
}

export function decodeBind(stub: Buffer): BindReply {
  const r = new NdrReader(stub);
  return r.in('IDL_DRSBind', () => {
    let extFlags = 0;
    let replEpoch = 0;
    if (r.u32() !== 0) {
      r.in('DRS_EXTENSIONS', () => {
        const cb = r.count('cb', 10000);
        const size = r.u32();
        r.expectConformance(size, cb, 'cb');
        const ext = r.bytes(cb);
        if (cb >= 4) extFlags = ext.readUInt32LE(0);
        if (cb >= 28) replEpoch = ext.readUInt32LE(24);
        r.align(4);
      });
    }
    const handle = Buffer.from(r.bytes(20));
    const werror = r.u32();
    return { handle, extFlags, replEpoch, werror };
  });
}

export function encodeUnbind(handle: Buffer): Buffer {
  return Buffer.from(handle);
}

// ---------------------------------------------------------------------------------------------
// DRSGetNCChanges request V8

export interface GetNCChangesRequest {
  handle: Buffer;
  /** The naming context's DN (the domain root). */
  ncDn: string;
  invocationId: string;
  highWaterMark: HighWaterMark;
  upToDateness: Cursor[];
  flags: number;
  maxObjects: number;
  maxBytes: number;
  attids: readonly number[];
  /** 'schemaInfo' (default): index 9 → 1.2.840.113556.1.4 plus the 21-byte schemaInfo entry; 'empty': no table. */
  prefixTable?: 'schemaInfo' | 'empty';
  /** ulExtendedOp (default EXOP_NONE); with EXOP_REPL_OBJ, pNC names the one object (objectGuid). */
  extendedOp?: number;
  /** The GUID in pNC's DSNAME (the object of EXOP_REPL_OBJ); NIL = identified by its DN. */
  objectGuid?: string;
}

/** ulExtendedOp: replicate one object (MS-DRSR 4.1.10.2.21 EXOP_REQUEST, EXOP_REPL_OBJ). */
export const EXOP_REPL_OBJ = 6;

function writeDsName(w: NdrWriter, dn: string, guid: string = NIL_GUID): void {
  const name = Buffer.from(dn + '\0', 'utf16le');
  const chars = dn.length + 1;
  w.u32(chars); // max_count of StringName
  w.u32(56 + name.length); // structLen: the DSNAME without its conformance
  w.u32(0); // SidLen
  w.guid(guid);
  w.bytes(Buffer.alloc(28));
  w.u32(dn.length);
  w.bytes(name);
  w.align(4);
}

export function encodeGetNCChanges(q: GetNCChangesRequest): Buffer {
  const w = new NdrWriter();
  w.bytes(q.handle);
  w.u32(8); // dwInVersion
  w.u32(8); // union switch
  w.align(8);
  // DRS_MSG_GETCHGREQ_V8 scalars
  w.guid(NTDSAPI_CLIENT_GUID); // uuidDsaObjDest
  w.guid(q.invocationId); // uuidInvocIdSrc
  w.pointer(true); // pNC
  w.u64(q.highWaterMark.tmpHighestUsn).u64(q.highWaterMark.reservedUsn).u64(q.highWaterMark.highestUsn);
  w.pointer(q.upToDateness.length > 0); // pUpToDateVecDest
  w.u32(q.flags);
  w.u32(q.maxObjects);
  w.u32(q.maxBytes);
  w.u32(q.extendedOp ?? 0); // ulExtendedOp
  w.u64(0n); // liFsmoInfo
  w.pointer(true); // pPartialAttrSet
  w.pointer(false); // pPartialAttrSetEx
  const table = q.prefixTable === 'empty' ? [] : [{ index: PREFIX_INDEX_MS_DS_ATTRS, oid: OID_PREFIX_MS_DS_ATTRS }, { index: 0, oid: SCHEMA_INFO_ENTRY }];
  w.u32(table.length);
  w.pointer(table.length > 0);
  w.align(8);
  // referents, in member order
  writeDsName(w, q.ncDn, q.objectGuid);
  if (q.upToDateness.length > 0) {
    w.u32(q.upToDateness.length);
    w.align(8);
    w.u32(1).u32(0).u32(q.upToDateness.length).u32(0);
    for (const c of q.upToDateness) w.align(8).guid(c.invocationId).u64(c.highestUsn);
  }
  w.u32(q.attids.length);
  w.u32(1).u32(0).u32(q.attids.length);
  for (const a of q.attids) w.u32(a);
  if (table.length > 0) {
    w.u32(table.length);
    for (const e of table) w.u32(e.index).u32(e.oid.length).pointer(true);
    for (const e of table) w.u32(e.oid.length).bytes(e.oid).align(4);
  }
  return w.toBuffer();
}

// ---------------------------------------------------------------------------------------------
// DRSGetNCChanges reply V6

function readDsName(r: NdrReader): DsName {
  return r.in('DSNAME', () => {
    const maxCount = r.count('StringName max_count', 65536);
    r.u32(); // structLen
    const sidLen = r.u32();
    if (sidLen > 28) r.fail(`SidLen ${sidLen} exceeds 28`);
    const guid = r.guid();
    const sid = Buffer.from(r.bytes(28).subarray(0, sidLen));
    const nameLen = r.u32();
    if (nameLen + 1 !== maxCount) r.fail(`NameLen ${nameLen} does not match max_count ${maxCount}`);
    const dn = r.bytes(maxCount * 2).toString('utf16le', 0, nameLen * 2);
    r.align(4);
    return { guid, sid, dn };
  });
}

function readHwm(r: NdrReader): HighWaterMark {
  return { tmpHighestUsn: r.u64(), reservedUsn: r.u64(), highestUsn: r.u64() };
}

function readAttrs(r: NdrReader, count: number): AttrValue[] {
  return r.in('ATTRBLOCK', () => {
    const maxCount = r.u32();
    r.expectConformance(maxCount, count, 'attrCount');
    const heads = Array.from({ length: count }, () => ({ attid: r.u32(), n: r.count('valCount', 1_000_000), ptr: r.u32() }));
    return heads.map((h) =>
      r.in(`ATTR(0x${h.attid.toString(16)})`, () => {
        if (h.ptr === 0) return { attid: h.attid, values: [] };
        const mc = r.u32();
        r.expectConformance(mc, h.n, 'valCount');
        const vals = Array.from({ length: h.n }, () => ({ len: r.count('valLen', 10 * 1024 * 1024), ptr: r.u32() }));
        const values = vals.map((v) => {
          if (v.ptr === 0) return Buffer.alloc(0);
          const len = r.u32();
          r.expectConformance(len, v.len, 'valLen');
          const b = Buffer.from(r.bytes(len));
          r.align(4);
          return b;
        });
        return { attid: h.attid, values };
      }),
    );
  });
}

/** Reads the WERROR that ends every DRSUAPI response stub. */
export function trailingWerror(stub: Buffer): number {
  if (stub.length < 4) new NdrReader(stub).fail('response stub shorter than a WERROR');
  return stub.readUInt32LE(stub.length - 4);
}

export function decodeGetNCChanges(stub: Buffer): GetNCChangesReply {
  const r = new NdrReader(stub);
  return r.in('IDL_DRSGetNCChanges', () => {
    const level = r.u32();
    const sw = r.u32(); // the union's discriminant, 4-aligned; the arm is 8-aligned
    if (level !== 6 || sw !== 6) r.fail(`reply version ${level}/${sw}; only DRS_MSG_GETCHGREPLY_V6 is supported`);
    return r.in('DRS_MSG_GETCHGREPLY_V6', () => {
      r.align(8);
      const sourceDsaGuid = r.guid();
      const invocationId = r.guid();
      const pNC = r.u32();
      readHwm(r); // usnvecFrom
      const newHighWaterMark = readHwm(r);
      const pUtd = r.u32();
      const prefixCount = r.count('PrefixCount', 100_000);
      const pPrefix = r.u32();
      r.u32(); // ulExtendedRet
      const objectCount = r.u32();
      r.u32(); // cNumBytes
      const pObjects = r.u32();
      const moreData = r.u32() !== 0;
      r.u32(); // cNumNcSizeObjects
      r.u32(); // cNumNcSizeValues
      r.u32(); // cNumValues
      r.u32(); // rgValues
      r.u32(); // dwDRSError
      // no trailing pad: the referents start right after the last scalar

      if (pNC) readDsName(r);
      const upToDateness: Cursor[] = [];
      if (pUtd) {
        r.in('UPTODATE_VECTOR_V2_EXT', () => {
          const mc = r.u32();
          r.align(8);
          const version = r.u32();
          r.u32();
          const n = r.count('cNumCursors', 100_000);
          r.u32();
          if (version !== 2) r.fail(`dwVersion ${version}, expected 2`);
          r.expectConformance(mc, n, 'cNumCursors');
          for (let i = 0; i < n; i++) {
            r.align(8);
            const id = r.guid();
            const usn = r.u64();
            r.u64(); // timeLastSyncSuccess
            upToDateness.push({ invocationId: id, highestUsn: usn });
          }
        });
      }
      const prefixes = new Map<number, Buffer>();
      if (pPrefix) {
        r.in('SCHEMA_PREFIX_TABLE', () => {
          const mc = r.u32();
          r.expectConformance(mc, prefixCount, 'PrefixCount');
          const heads = Array.from({ length: prefixCount }, () => ({ index: r.u32(), len: r.count('length', 10000), ptr: r.u32() }));
          for (const h of heads) {
            if (!h.ptr) continue;
            const len = r.u32();
            r.expectConformance(len, h.len, 'length');
            prefixes.set(h.index, Buffer.from(r.bytes(len)));
            r.align(4);
          }
        });
      }
      const objects: ReplicatedObject[] = [];
      if (pObjects) {
        r.in('REPLENTINFLIST', () => {
          type Head = { pName: number; attrCount: number; pAttr: number; pParent: number; pMeta: number };
          const heads: Head[] = [];
          let next = pObjects;
          while (next) {
            if (heads.length >= 1_000_000) r.fail('more than 1,000,000 entries');
            next = r.u32();
            const pName = r.u32();
            r.u32(); // ulFlags
            const attrCount = r.count('attrCount', 100_000);
            const pAttr = r.u32();
            r.u32(); // fIsNCPrefix
            const pParent = r.u32();
            const pMeta = r.u32();
            heads.push({ pName, attrCount, pAttr, pParent, pMeta });
          }
          // each entry's referents follow the rest of the chain: last entry first
          for (let i = heads.length - 1; i >= 0; i--) {
            const h = heads[i] as Head;
            const name = h.pName ? readDsName(r) : { guid: NIL_GUID, sid: Buffer.alloc(0), dn: '' };
            const attrs = h.pAttr ? readAttrs(r, h.attrCount) : [];
            if (h.pParent) r.guid();
            if (h.pMeta) {
              r.in('PROPERTY_META_DATA_EXT_VECTOR', () => {
                const mc = r.u32();
                r.align(8);
                const n = r.count('cNumProps', 100_000);
                r.expectConformance(mc, n, 'cNumProps');
                for (let k = 0; k < n; k++) {
                  r.align(8);
                  r.u32();
                  r.u64();
                  r.guid();
                  r.u64();
                }
              });
            }
            objects.push({ name, attrs });
          }
          objects.reverse();
        });
      }
      return { sourceDsaGuid, invocationId, newHighWaterMark, upToDateness, prefixes, objects, moreData, objectCount };
    });
  });
}
