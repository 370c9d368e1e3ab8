/**
 * The commands that run until they are stopped meet SIGINT/SIGTERM with their own handler from
 * before they say they are ready (src/cli/signals.ts). Signals are sent with process.emit in this
 * process (no other SIGINT/SIGTERM listener exists in a test process), so the order is checked
 * exactly, not by a race that a real signal would lose only sometimes.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { registerCloudCommands } from '../../src/cli/commands/cloud.js';
import { StopSignals } from '../../src/cli/signals.js';

const listeners = (): { int: number; term: number } => ({ int: process.listenerCount('SIGINT'), term: process.listenerCount('SIGTERM') });

describe('StopSignals', () => {
  it('the first SIGINT or SIGTERM resolves `first`, later ones go to onAgain, dispose takes the handlers off', async () => {
    const before = listeners();
    const again: NodeJS.Signals[] = [];
    const s = new StopSignals((sig) => again.push(sig));
    assert.deepEqual(listeners(), { int: before.int + 1, term: before.term + 1 });
    assert.equal(s.received, false);
    process.emit('SIGTERM', 'SIGTERM');
    assert.equal(await s.first, 'SIGTERM');
    assert.equal(s.received, true);
    process.emit('SIGINT', 'SIGINT');
    process.emit('SIGTERM', 'SIGTERM');
    assert.deepEqual(again, ['SIGINT', 'SIGTERM']);
    s.dispose();
    assert.deepEqual(listeners(), before);
  });
});

describe('commands that run until stopped', () => {
  it('`cloud serve` has its SIGINT/SIGTERM handler when it prints where it listens, and stops cleanly at the signal', { timeout: 30_000 }, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'idsync-signals-'));
    const before = listeners();
    const atReady: { int: number; term: number }[] = [];
    let out = '';
    const write = process.stdout.write.bind(process.stdout);
    const adminPassword = process.env.IDSYNC_CLOUD_ADMIN_PASSWORD;
    process.env.IDSYNC_CLOUD_ADMIN_PASSWORD = 'signals-admin-password-1';
    let resignal: NodeJS.Timeout | undefined;
    // The JSON line is the "ready": whoever reads it may signal at once. Record the handlers then,
    // and signal on the next turn (a command without its handler yet would never stop otherwise).
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      const text = typeof chunk === 'string' ? chunk : '';
      if (text.includes('"url"')) {
        out += text;
        atReady.push(listeners());
        setImmediate(() => process.emit('SIGTERM', 'SIGTERM'));
        // A command whose handler came later would miss that one and never stop: signal again
        // until it does, so that such a regression fails the assertions below instead of hanging.
        resignal = setInterval(() => process.emit('SIGTERM', 'SIGTERM'), 50);
        return true;
      }
      return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stdout.write;
    try {
      const program = new Command('idsync').exitOverride();
      registerCloudCommands(program);
      await program.parseAsync(['cloud', 'serve', '--data', dir, '--port', '0', '--log-level', 'silent', '--json'], { from: 'user' });
    } finally {
      clearInterval(resignal);
      process.stdout.write = write;
      if (adminPassword === undefined) delete process.env.IDSYNC_CLOUD_ADMIN_PASSWORD;
      else process.env.IDSYNC_CLOUD_ADMIN_PASSWORD = adminPassword;
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(atReady.length, 1, out);
    assert.deepEqual(atReady[0], { int: before.int + 1, term: before.term + 1 }, 'the handlers were there when it said it was ready');
    assert.deepEqual(listeners(), before, 'and are gone once it stopped');
    assert.match(JSON.parse(out).url, /^http:\/\/127\.0\.0\.1:\d+$/);
  });
});
