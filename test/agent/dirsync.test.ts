import { strict as assert } from 'node:assert';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Ber, BerReader, BerWriter, ControlParser } from 'ldapts';
import { DirSyncControl, DIRSYNC_OID } from '../../src/agent/dirsync.js';
import { fileTimeToDate } from '../../src/agent/samba.js';
import { CookieFile } from '../../src/agent/state.js';

describe('DirSync control', () => {
  it('encodes SEQ{flags, maxBytes, cookie} as the control value', () => {
    const c = new DirSyncControl(Buffer.from([1, 2, 3]), 0x80000000, 0x100000);
    const w = new BerWriter();
    c.write(w);
    const r = new BerReader(w.buffer);
    r.readSequence();
    assert.equal(r.readString(), DIRSYNC_OID);
    assert.equal(r.readBoolean(), true);
    const value = r.readString(Ber.OctetString, true)!;
    const v = new BerReader(value);
    v.readSequence();
    assert.equal(v.readInt(), -0x80000000); // INCREMENTAL_VALUES as a signed 32-bit INTEGER
    assert.equal(v.readInt(), 0x100000);
    assert.deepEqual(v.readString(Ber.OctetString, true), Buffer.from([1, 2, 3]));
  });

  it('takes the new cookie and moreResults from the response value', () => {
    const v = new BerWriter();
    v.startSequence();
    v.writeInt(1);
    v.writeInt(0);
    v.writeBuffer(Buffer.from('new-cookie'), Ber.OctetString);
    v.endSequence();
    const w = new BerWriter();
    w.startSequence();
    w.writeString(DIRSYNC_OID);
    w.writeBuffer(v.buffer, Ber.OctetString);
    w.endSequence();
    const c = new DirSyncControl();
    // the path ldapts takes: a response control with the request's OID reaches the request instance
    assert.equal(ControlParser.parse(new BerReader(w.buffer), [c]), c);
    assert.equal(c.moreResults, true);
    assert.equal(c.answered, true);
    assert.equal(c.cookie.toString(), 'new-cookie');
  });
});

describe('agent state and time', () => {
  it('keeps the cookie in a file replaced atomically', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'idsync-agent-'));
    try {
      const f = new CookieFile(dir, 'DC=lab,DC=test');
      assert.equal(f.read().length, 0);
      f.write(Buffer.from([0, 1, 2, 255]));
      assert.deepEqual(new CookieFile(dir, 'dc=LAB,dc=test').read(), Buffer.from([0, 1, 2, 255]));
      assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.tmp')), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('converts pwdLastSet (FILETIME) to a date', () => {
    assert.equal(fileTimeToDate('133000000000000000')?.toISOString(), '2022-06-18T04:26:40.000Z');
    assert.equal(fileTimeToDate('0'), undefined);
    assert.equal(fileTimeToDate(undefined), undefined);
  });
});
