/**
 * Reading the configuration file: what it is is checked before it is read. A FIFO given as the
 * configuration blocked for ever, /dev/zero or a huge file were read whole into memory before the
 * size limit was checked, and a directory was "not found".
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { loadConfig, MAX_CONFIG_BYTES } from '../../src/config/load.js';
import { isIdsyncError } from '../../src/core/errors.js';

const dir = mkdtempSync(path.join(tmpdir(), 'idsync-load-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const refused = (file: string, message: RegExp) =>
  assert.throws(() => loadConfig(file), (err: unknown) => isIdsyncError(err) && err.code === 'CONFIG_INVALID' && message.test(err.message));

describe('loadConfig: the file is checked before it is read', () => {
  test('a directory is not a configuration file', () => {
    mkdirSync(path.join(dir, 'conf.d'));
    refused(path.join(dir, 'conf.d'), /not a regular file \(a directory\)/);
  });

  test('a FIFO is refused at once (reading it would wait for a writer for ever)', () => {
    const fifo = path.join(dir, 'idsync.fifo');
    execFileSync('mkfifo', [fifo]);
    refused(fifo, /not a regular file/);
    refused('/dev/zero', /not a regular file/);
  });

  test('a file over the size limit is refused without being read', () => {
    const big = path.join(dir, 'big.yaml');
    writeFileSync(big, '');
    truncateSync(big, MAX_CONFIG_BYTES * 512); // sparse: 512 MiB that cost no disk
    refused(big, /larger than 1024 KiB/);
  });

  test('a missing file is still CONFIG_NOT_FOUND', () => {
    assert.throws(() => loadConfig(path.join(dir, 'nope.yaml')), (err: unknown) => isIdsyncError(err) && err.code === 'CONFIG_NOT_FOUND');
  });
});
