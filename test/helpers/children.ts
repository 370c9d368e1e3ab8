/**
 * Server processes started by tests (slapd, samba) must not outlive the test process, even when it
 * ends without running its teardown: they are SIGKILLed when it exits.
 */
import type { ChildProcess } from 'node:child_process';

const running = new Set<ChildProcess>();
let hookInstalled = false;

export function killOnExit(child: ChildProcess): void {
  if (!hookInstalled) {
    hookInstalled = true;
    process.once('exit', () => {
      for (const c of running) c.kill('SIGKILL');
    });
  }
  running.add(child);
  child.once('exit', () => running.delete(child));
}
