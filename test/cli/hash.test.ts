/**
 * `idsync hash ...` through a real process: stdin in, stdout/stderr/exit code out.
 * The CLI program is built from the same register function main.ts uses, so these tests do not depend
 * on every other command group compiling; one more test runs the real main.ts when it loads.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isIdsyncError } from '../../src/core/errors.js';
import { mapLinesOrdered } from '../../src/cli/commands/hash.js';
import { readLines, type InputLine } from '../../src/passwords/input.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { ntHash, orgIdHash, parseOrgIdHash, verifyOrgIdHash } from '../../src/passwords/hash.js';
import { commanderRunner } from '../helpers/processes.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
interface Vectors {
  nt_hash: { password: string; nt_hash: string }[];
  orgid: { password: string; salt: string; iterations: number; expected: string }[];
}
const vectors = JSON.parse(readFileSync(path.resolve(repoRoot, 'test/fixtures/phs-vectors.json'), 'utf8')) as Vectors;

const RUNNER = commanderRunner("const { registerHashCommands } = await import('./src/cli/commands/hash.ts');", 'registerHashCommands(program)');
const REAL_MAIN = `
const m = await import('./src/cli/main.ts');
process.exitCode = await m.main([process.execPath, 'idsync', ...process.argv.slice(1)]);
`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}
function idsync(args: string[], input: string | Buffer = '', runner = RUNNER): Run {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', runner, '--', ...args], {
    cwd: repoRoot,
    input,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const lines = (s: string) => s.split('\n').slice(0, -1);

describe('idsync hash nt', () => {
  it('prints the published NT hash (upper-case hex) of every vector, one per line, in order', () => {
    const input = vectors.nt_hash.map((v) => v.password + '\n').join('');
    const r = idsync(['hash', 'nt'], input);
    assert.equal(r.code, EXIT.OK, r.stderr);
    assert.deepEqual(lines(r.stdout), vectors.nt_hash.map((v) => v.nt_hash));
  });

  it('strips one trailing \\r, hashes a last line without newline, and treats a middle empty line as the empty password', () => {
    const r = idsync(['hash', 'nt'], 'password\r\n\nPa$$w0rd');
    assert.equal(r.code, EXIT.OK, r.stderr);
    assert.deepEqual(lines(r.stdout), ['8846F7EAEE8FB117AD06BDD830B7586C', '31D6CFE0D16AE931B73C59D7E0C089C0', '92937945B518814341DE3F726500D4FF']);
  });

  it('prints nothing for empty input, and one empty-password hash for a lone newline', () => {
    const empty = idsync(['hash', 'nt'], '');
    assert.equal(empty.code, EXIT.OK);
    assert.equal(empty.stdout, '');
    const one = idsync(['hash', 'nt'], '\n');
    assert.deepEqual(lines(one.stdout), ['31D6CFE0D16AE931B73C59D7E0C089C0']);
  });

  it('hashes UTF-8 input as UTF-16LE (non-ASCII and astral characters)', async () => {
    const pw = ['pässwörd', 'パスワード', 'emoji😀pw'];
    const r = idsync(['hash', 'nt'], pw.join('\n') + '\n');
    assert.equal(r.code, EXIT.OK, r.stderr);
    const expected = await Promise.all(pw.map(async (p) => (await ntHash(p)).toString('hex').toUpperCase()));
    assert.deepEqual(lines(r.stdout), expected);
  });

  it('stops at a line that is not UTF-8 with PASSWORD_NOT_TEXT naming the line, after printing the lines before it', () => {
    const input = Buffer.concat([Buffer.from('password\nPa$$w0rd\n'), Buffer.from([0x61, 0xff, 0xfe, 0x0a]), Buffer.from('more\n')]);
    const r = idsync(['hash', 'nt'], input);
    assert.equal(r.code, EXIT.USAGE);
    assert.match(r.stderr, /PASSWORD_NOT_TEXT/);
    assert.match(r.stderr, /line 3\b/);
    assert.deepEqual(lines(r.stdout), ['8846F7EAEE8FB117AD06BDD830B7586C', '92937945B518814341DE3F726500D4FF']);
  });

  it('refuses a password longer than 256 characters with PASSWORD_TOO_LONG naming the line, never the password', () => {
    const secret = 'Kx7Secret'.repeat(40); // 360 characters
    const r = idsync(['hash', 'nt'], `ok\n${secret}\n`);
    assert.equal(r.code, EXIT.USAGE);
    assert.match(r.stderr, /PASSWORD_TOO_LONG/);
    assert.match(r.stderr, /line 2\b/);
    assert.ok(!r.stderr.includes('Kx7Secret'));
    assert.ok(!r.stdout.includes('Kx7Secret'));
    assert.equal(lines(r.stdout).length, 1);
  });

  it('counts characters, not bytes: 256 two-byte characters pass, 257 fail at the right line', () => {
    const ok = idsync(['hash', 'nt'], 'é'.repeat(256) + '\n');
    assert.equal(ok.code, EXIT.OK, ok.stderr);
    assert.equal(lines(ok.stdout).length, 1);
    const bad = idsync(['hash', 'nt'], 'a\nb\n' + 'é'.repeat(257) + '\n');
    assert.equal(bad.code, EXIT.USAGE);
    assert.match(bad.stderr, /line 3\b.*256|PASSWORD_TOO_LONG.*line 3/);
  });

  it('handles a very long line without a newline (refused, not buffered)', () => {
    const r = idsync(['hash', 'nt'], 'x'.repeat(5_000_000));
    assert.equal(r.code, EXIT.USAGE);
    assert.match(r.stderr, /PASSWORD_TOO_LONG.*line 1/);
  });
});

describe('idsync hash orgid', () => {
  for (const v of vectors.orgid) {
    it(`prints the published OrgId hash with --salt ${v.salt}`, () => {
      const r = idsync(['hash', 'orgid', '--salt', v.salt, '--iterations', String(v.iterations)], v.password + '\n');
      assert.equal(r.code, EXIT.OK, r.stderr);
      assert.deepEqual(lines(r.stdout), [v.expected]);
    });
    it(`--nt-hash starts from the NT hash (salt ${v.salt})`, async () => {
      const nt = (await ntHash(v.password)).toString('hex');
      for (const hex of [nt.toUpperCase(), nt.toLowerCase()]) {
        const r = idsync(['hash', 'orgid', '--nt-hash', hex, '--salt', v.salt]);
        assert.equal(r.code, EXIT.OK, r.stderr);
        assert.deepEqual(lines(r.stdout), [v.expected]);
      }
    });
  }

  it('uses a fresh 10-byte salt per line and 1000 iterations by default; results verify', async () => {
    const r = idsync(['hash', 'orgid'], 'Pa$$w0rd\nPa$$w0rd\n');
    assert.equal(r.code, EXIT.OK, r.stderr);
    const [a, b] = lines(r.stdout);
    const pa = parseOrgIdHash(a!)!;
    const pb = parseOrgIdHash(b!)!;
    assert.equal(pa.salt.length, 10);
    assert.equal(pa.iterations, 1000);
    assert.notDeepEqual(pa.salt, pb.salt);
    assert.equal(await verifyOrgIdHash('Pa$$w0rd', a!), true);
    assert.equal(await verifyOrgIdHash('Pa$$w0rd', b!), true);
  });

  it('--iterations 100 gives the older builds\' strings', async () => {
    const salt = vectors.orgid[0]!.salt;
    const r = idsync(['hash', 'orgid', '--salt', salt, '--iterations', '100'], 'Pa$$w0rd\n');
    assert.equal(r.code, EXIT.OK, r.stderr);
    assert.deepEqual(lines(r.stdout), [await orgIdHash('Pa$$w0rd', { salt: Buffer.from(salt, 'hex'), iterations: 100 })]);
  });

  it('keeps input order across many concurrent hashes', async () => {
    const passwords = Array.from({ length: 600 }, (_, i) => (i % 7 === 0 ? '' : `pw-${i}-${'x'.repeat(i % 50)}`));
    const salt = '00112233445566778899';
    const r = idsync(['hash', 'orgid', '--salt', salt], passwords.join('\n') + '\n');
    assert.equal(r.code, EXIT.OK, r.stderr);
    const expected = await Promise.all(passwords.map((p) => orgIdHash(p, { salt: Buffer.from(salt, 'hex') })));
    assert.deepEqual(lines(r.stdout), expected);
  });

  it('--nt-hash - reads NT hashes from stdin, one per line, and names a bad line', () => {
    const v = vectors.orgid[0]!;
    const ok = idsync(['hash', 'orgid', '--nt-hash', '-', '--salt', v.salt], '92937945B518814341DE3F726500D4FF\r\n92937945b518814341de3f726500d4ff\n');
    assert.equal(ok.code, EXIT.OK, ok.stderr);
    assert.deepEqual(lines(ok.stdout), [v.expected, v.expected]);
    const bad = idsync(['hash', 'orgid', '--nt-hash', '-'], '92937945B518814341DE3F726500D4FF\nnot-a-hash\n');
    assert.equal(bad.code, EXIT.USAGE);
    assert.match(bad.stderr, /HASH_INPUT_INVALID.*line 2/);
  });

  it('refuses an --nt-hash that is not 32 hex digits', () => {
    for (const bad of ['92937945B518814341DE3F726500D4F', '92937945B518814341DE3F726500D4FFAA', 'Z2937945B518814341DE3F726500D4FF']) {
      const r = idsync(['hash', 'orgid', '--nt-hash', bad]);
      assert.equal(r.code, EXIT.USAGE, bad);
      assert.match(r.stderr, /HASH_INPUT_INVALID/);
    }
  });

  it('refuses a --salt that is not even-length hex (or over 64 bytes), and accepts other lengths', () => {
    for (const bad of ['abc', 'zz', '', 'ab'.repeat(65)]) {
      const r = idsync(['hash', 'orgid', '--salt', bad], 'x\n');
      assert.equal(r.code, EXIT.USAGE, bad);
      assert.match(r.stderr, /HASH_INPUT_INVALID.*--salt/);
      assert.equal(r.stdout, '');
    }
    const r = idsync(['hash', 'orgid', '--salt', 'ABCD'], 'x\n');
    assert.equal(r.code, EXIT.OK, r.stderr);
    assert.match(r.stdout, /^v1;PPH1_MD4,abcd,1000,[0-9a-f]{64};\n$/);
  });

  it('refuses --iterations outside 1..100000', () => {
    for (const bad of ['0', '100001', 'abc', '-5', '1.5']) {
      const r = idsync(['hash', 'orgid', '--iterations', bad], 'x\n');
      assert.equal(r.code, EXIT.USAGE, bad);
      assert.match(r.stderr, /--iterations/);
    }
    const r = idsync(['hash', 'orgid', '--iterations', '1', '--salt', '00'], 'x\n');
    assert.equal(r.code, EXIT.OK, r.stderr);
    assert.match(r.stdout, /,1,/);
  });

  it('names the line of a password that is too long', () => {
    const r = idsync(['hash', 'orgid'], 'a\nb\nc\n' + 'y'.repeat(257) + '\n');
    assert.equal(r.code, EXIT.USAGE);
    assert.match(r.stderr, /PASSWORD_TOO_LONG.*line 4/);
    assert.equal(lines(r.stdout).length, 3);
  });
});

describe('idsync hash verify', () => {
  const v = vectors.orgid[0]!;
  it('exits 0 and prints "match" for the right password', () => {
    const r = idsync(['hash', 'verify', v.expected], v.password + '\n');
    assert.equal(r.code, EXIT.OK, r.stderr);
    assert.equal(r.stdout, 'match\n');
  });
  it('exits 1 for a wrong password', () => {
    const r = idsync(['hash', 'verify', v.expected, '--json'], 'wrong\n');
    assert.equal(r.code, EXIT.FAILED);
    assert.deepEqual(JSON.parse(r.stdout), { match: false });
  });
  it('exits 2 for a malformed hash', () => {
    const r = idsync(['hash', 'verify', 'v1;PPH1_MD4,zz,1000,00;'], 'x\n');
    assert.equal(r.code, EXIT.USAGE);
    assert.match(r.stderr, /HASH_INPUT_INVALID/);
  });
});

describe('streaming (in process)', () => {
  async function* generated(n: number, perChunk = 1000): AsyncGenerator<Buffer> {
    for (let i = 0; i < n; i += perChunk) {
      let s = '';
      for (let j = i; j < Math.min(n, i + perChunk); j++) s += `p${j}\n`;
      yield Buffer.from(s);
    }
  }

  it('readLines splits across chunk boundaries and handles \\r\\n split between chunks', async () => {
    const got: InputLine[] = [];
    for await (const l of readLines(Readable.from([Buffer.from('ab'), Buffer.from('c\r'), Buffer.from('\nde'), Buffer.from('f\n\n')]))) got.push(l);
    assert.deepEqual(got, [
      { line: 1, text: 'abc' },
      { line: 2, text: 'def' },
      { line: 3, text: '' },
    ]);
  });

  it('a UTF-8 byte order mark at the start is ignored', async () => {
    const got: InputLine[] = [];
    for await (const l of readLines(Readable.from([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('password\n')]))) got.push(l);
    assert.deepEqual(got, [{ line: 1, text: 'password' }]);
  });

  it('keeps at most `concurrency` lines in flight and pauses reading while the output is blocked', async () => {
    const concurrency = 8;
    const total = 20_000;
    let dispatched = 0;
    let written = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    let maxAhead = 0;
    let expectNext = 0;
    let ordered = true;
    const output = new Writable({
      highWaterMark: 256,
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n').slice(0, -1)) {
          if (l !== `h${expectNext}`) ordered = false;
          expectNext++;
          written++;
        }
        setImmediate(cb); // a slow reader
      },
    });
    const count = await mapLinesOrdered(
      readLines(generated(total)),
      async (text) => {
        dispatched++;
        maxAhead = Math.max(maxAhead, dispatched - written);
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        // finish out of order on purpose
        await new Promise((r) => setTimeout(r, Math.random() < 0.5 ? 0 : 1));
        inFlight--;
        return 'h' + text.slice(1);
      },
      output,
      concurrency,
    );
    assert.equal(count, total);
    assert.equal(written, total);
    assert.ok(ordered, 'output in input order');
    assert.ok(maxInFlight <= concurrency, `max in flight ${maxInFlight}`);
    assert.ok(maxAhead <= 4 * concurrency, `read ahead of output by ${maxAhead}`);
  });

  it('stops at the first failing line after writing everything before it', async () => {
    let out = '';
    const output = new Writable({
      write(chunk: Buffer, _enc, cb) {
        out += chunk.toString();
        cb();
      },
    });
    await assert.rejects(
      mapLinesOrdered(
        readLines(Readable.from(['a\nb\nBAD\nc\n'])),
        async (t, line) => {
          if (t === 'BAD') throw new Error(`boom at ${line}`);
          await new Promise((r) => setTimeout(r, t === 'a' ? 5 : 0));
          return t.toUpperCase();
        },
        output,
        4,
      ),
      /boom at 3/,
    );
    assert.equal(out, 'A\nB\n');
  });

  it('a line error from the reader surfaces as its IdsyncError', async () => {
    const output = new Writable({ write: (_c, _e, cb) => cb() });
    await assert.rejects(
      mapLinesOrdered(readLines(Readable.from([Buffer.from([0xc3, 0x28, 0x0a])])), async (t) => t, output),
      (e) => isIdsyncError(e, 'PASSWORD_NOT_TEXT') && e.details.line === 1,
    );
  });
});

describe('the real idsync main', () => {
  it('runs `idsync hash nt` through main.ts', () => {
    const r = idsync(['hash', 'nt'], 'password\n', REAL_MAIN);
    assert.equal(r.code, EXIT.OK, r.stderr);
    assert.equal(r.stdout, '8846F7EAEE8FB117AD06BDD830B7586C\n');
  });
});
