/**
 * `idsync service start|stop|restart|status|install`: the real service (`idsync serve`) as a
 * detached child, an LDIF source and the real cloud directory. The child runs the TypeScript
 * sources through tsx (no build needed). The cloud runs in this process: only async spawns here.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import type { LoadedConfig } from '../../src/config/load.js';
import { daemonState, isServiceProcess, pidFilePath, readPidFile, serviceStatus, startDaemon, stopDaemon } from '../../src/service/daemon.js';
import { installUnit, renderUnit } from '../../src/service/systemd.js';
import type { TestCloud } from '../helpers/cloud.js';
import { ldifConnector, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { CLI_FROM_SOURCE_ARGS, commandGroupCode, portOpen, runTsxCode } from '../helpers/processes.js';
import { freePort } from '../helpers/slapd.js';

const nodeArgs = CLI_FROM_SOURCE_ARGS;

const BASE = 'dc=example,dc=test';
function ldif(n: number): string {
  const out = ['version: 1', ''];
  for (let i = 1; i <= n; i++) {
    out.push(`dn: uid=u${i},ou=eng,${BASE}`, 'objectClass: inetOrgPerson', `uid: u${i}`, `cn: User ${i}`, `sn: u${i}`, `mail: u${i}@example.test`, `entryUUID: 00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, '');
  }
  return out.join('\n');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `idsync -c <config> <args>` with the service commands registered, in a child process (async). */
const cli = (config: string, args: string[]) => runTsxCode(commandGroupCode('service', 'registerServiceCommands'), ['-c', config, ...args]);

describe('idsync service (background daemon)', () => {
  let lab: EngineLab;
  let cloud: TestCloud;
  let dir: string;
  let configFile: string;
  let loaded: LoadedConfig;
  let port: number;
  const started = new Set<number>();

  const start = async (onPort = port) => {
    const r = await startDaemon(loaded, { port: onPort, intervalMs: 3_600_000, nodeArgs, timeoutMs: 30_000 });
    started.add(r.pid);
    return r;
  };

  before(async () => {
    lab = await startEngineLab({ prefix: 'idsync-daemon-', connectors: [ldifConnector()], cloudConfig: { retries: 0 }, files: { 'source.ldif': ldif(5) }, keepOpen: false });
    ({ cloud, dir, configFile, loaded } = lab);
    port = await freePort();
  });

  after(async () => {
    await stopDaemon(loaded.dataDir, { timeoutMs: 5000 }).catch(() => undefined);
    for (const pid of started) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await lab?.close();
  });

  let firstPid = 0;

  test('start: detached serve, pid file with pid and port, /healthz answers', async () => {
    const r = await start();
    firstPid = r.pid;
    assert.equal(r.port, port);
    assert.ok(isServiceProcess(r.pid));
    const info = readPidFile(loaded.dataDir)!;
    assert.equal(info.pid, r.pid);
    assert.equal(info.port, port);
    assert.equal(info.config, configFile);
    const res = await request(`http://127.0.0.1:${port}/healthz`);
    assert.deepEqual(await res.body.json(), { status: 'alive' });
    assert.ok(existsSync(path.join(loaded.dataDir, 'idsync.log')));
  });

  test('status: running, the last cycle succeeded, healthy; the CLI exits 0', async () => {
    let s = await serviceStatus(loaded);
    for (let i = 0; i < 100 && !s.health?.cycle.last; i++) {
      await sleep(200);
      s = await serviceStatus(loaded);
    }
    assert.equal(s.running, true);
    assert.equal(s.pid, firstPid);
    assert.equal(s.health?.cycle.last?.status, 'success', JSON.stringify(s.health));
    assert.equal(s.healthy, true, JSON.stringify(s.health?.degraded));
    assert.ok(s.health!.credentials.some((c) => c.name === 'cloud' && c.lastTestOk === true));
    assert.equal(s.health!.passwords.outboxDepth, 0);
    assert.equal((await cloud.all('Users')).length, 5);

    const out = await cli(configFile, ['service', 'status']);
    assert.equal(out.code, 0);
    assert.match(out.stdout, new RegExp(`running \\(pid ${firstPid}`));
    assert.match(out.stdout, /last cycle: run \d+ \(\w+\) success/);
    assert.ok(!out.stdout.includes(cloud.syncSecret), 'no secret in the output');
  });

  test('start twice is refused while the service runs', async () => {
    await assert.rejects(start(), (e: { code?: string; message: string }) => e.code === 'RUN_IN_PROGRESS' && e.message.includes(String(firstPid)));
    assert.equal(readPidFile(loaded.dataDir)?.pid, firstPid, 'the pid file is untouched');
  });

  test('restart (stop + start) gives a new pid; the old process is gone', async () => {
    const stopped = await stopDaemon(loaded.dataDir);
    assert.equal(stopped.wasRunning, true);
    assert.equal(stopped.killed, false);
    assert.equal(isServiceProcess(firstPid), false);
    const r = await start();
    assert.notEqual(r.pid, firstPid);
    assert.equal(readPidFile(loaded.dataDir)?.pid, r.pid);
  });

  test('stop: SIGTERM, the process exits, the port closes, the pid file is removed; again is a no-op', async () => {
    const pid = readPidFile(loaded.dataDir)!.pid;
    const out = await cli(configFile, ['service', 'stop']);
    assert.equal(out.code, 0);
    assert.match(out.stdout, new RegExp(`stopped \\(pid ${pid}`));
    assert.equal(isServiceProcess(pid), false);
    assert.equal(await portOpen(port), false);
    assert.equal(existsSync(pidFilePath(loaded.dataDir)), false);
    const again = await cli(configFile, ['service', 'stop']);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /not running/);
  });

  test('status when not running: exit 1, and what the database knows', async () => {
    const s = await serviceStatus(loaded);
    assert.equal(s.running, false);
    assert.equal(s.offline?.lastRun?.status, 'success');
    assert.ok(s.offline?.credentials.some((c) => c.name === 'cloud'));
    assert.equal(s.offline?.outboxDepth, 0);
    const out = await cli(configFile, ['service', 'status', '--json']);
    assert.equal(out.code, 1);
    const json = JSON.parse(out.stdout);
    assert.equal(json.running, false);
    assert.equal(json.offline.lastRun.status, 'success');
  });

  test('a stale pid file (process gone) is removed, and start proceeds', async () => {
    const child = spawn(process.execPath, ['-e', '0']);
    const deadPid = child.pid!;
    await new Promise((r) => child.once('close', r));
    writeFileSync(pidFilePath(loaded.dataDir), JSON.stringify({ pid: deadPid, port, host: '127.0.0.1', startedAt: new Date().toISOString() }));
    assert.equal(daemonState(loaded.dataDir).running, false);
    assert.equal(existsSync(pidFilePath(loaded.dataDir)), false, 'daemonState removed it');
    writeFileSync(pidFilePath(loaded.dataDir), JSON.stringify({ pid: deadPid, port }));
    const r = await start();
    assert.equal(r.staleRemoved, true);
    assert.notEqual(r.pid, deadPid);
  });

  test('stop kills (SIGKILL) a service that does not exit within --timeout, and says so', async () => {
    const pid = readPidFile(loaded.dataDir)!.pid;
    process.kill(pid, 'SIGSTOP'); // a hung process: SIGTERM stays pending
    const r = await stopDaemon(loaded.dataDir, { timeoutMs: 1000 });
    assert.equal(r.wasRunning, true);
    assert.equal(r.killed, true);
    assert.equal(isServiceProcess(pid), false);
    assert.equal(existsSync(pidFilePath(loaded.dataDir)), false);
  });

  test('a start that fails (port taken) reports the log tail and leaves no pid file', { timeout: 60_000 }, async () => {
    // A port of its own: the one the earlier tests used may still be held by a process they killed.
    const taken = await freePort();
    const sockets = new Set<import('node:net').Socket>();
    const blocker = createServer((sock) => sockets.add(sock));
    await new Promise<void>((r) => blocker.listen(taken, '127.0.0.1', r));
    try {
      await assert.rejects(start(taken), (e: { message: string }) => /exited during start/.test(e.message) && /EADDRINUSE|cannot listen/.test(e.message));
      assert.equal(existsSync(pidFilePath(loaded.dataDir)), false);
    } finally {
      for (const sock of sockets) sock.destroy();
      await new Promise((r) => blocker.close(r));
    }
  });

  test('install: a user unit for this data directory; a system unit refuses files under /tmp (test/service/systemd.test.ts has the rest)', async () => {
    const user = renderUnit(loaded, { user: true, serveArgs: ['--interval', '10m'] });
    const lines = user.split('\n');
    for (const l of ['Type=simple', 'Restart=on-failure', 'NoNewPrivileges=yes', 'ProtectSystem=strict', `ReadWritePaths=${loaded.dataDir}`, 'KillSignal=SIGTERM', 'TimeoutStopSec=45', 'WantedBy=default.target']) {
      assert.ok(lines.includes(l), `missing line: ${l}\n${user}`);
    }
    assert.match(user, /^ExecStart=.* -c \S+ serve --interval 10m$/m);
    assert.ok(!user.includes('User='));
    assert.throws(() => renderUnit(loaded, { user: true, runAs: 'x' }), /--run-as/);
    assert.throws(() => installUnit(loaded, { output: path.join(dir, 'unit', 'idsync.service'), runAs: 'idsync', exec: process.execPath }), /under \/tmp/);

    const written = await cli(configFile, ['service', 'install', '--user', '--output', path.join(dir, 'u.service')]);
    assert.match(written.stdout, /systemctl --user daemon-reload && systemctl --user enable --now u/);
  });
});
