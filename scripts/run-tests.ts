/**
 * The test runner: `node --import tsx scripts/run-tests.ts [--unit] [files or folders...]`
 *
 * - finds test/**\/*.test.ts (or the files/folders given); `--unit` leaves out test/e2e;
 * - starts ONE Samba AD DC when a selected test needs it (test/e2e, test/connectors/ad, any file that
 *   imports test/helpers/samba) and Samba
 *   is installed — or always with IDSYNC_REQUIRE_INTEGRATION=1 (CI) — and describes it to the
 *   tests in IDSYNC_TEST_SAMBA (Samba's LDAP port is fixed, so tests share it, one file at a time);
 * - runs the files in two lanes at once, each a series of `node --import tsx --test
 *   --test-concurrency=1` processes: the files that use the Samba DC one after another in one lane
 *   (they share its fixed ports), every other file in chunks of CHUNK_FILES that whichever lane is
 *   free takes next — the second lane from the start, the DC lane once its own files (and the
 *   PostgreSQL pass) are done — so both lanes end together (the machine has 2 cores, and much of a
 *   test's time is waiting on a server); each line of output carries its process's tag (dc, pg,
 *   ot: a chunk of the second lane, o2: a chunk the DC lane took), and the run ends with one
 *   summary line; IDSYNC_TEST_LANES=1 runs everything in one process as before;
 * - runs the end-to-end suites that must hold on both sync stores (STORE_SUITES: directories, delta,
 *   passwords, the KB 2962509 scenario) a second time on PostgreSQL (IDSYNC_TEST_STORE=postgres),
 *   after the DC lane and tagged `pg`, when the whole suite runs and PostgreSQL is installed — always
 *   in CI, where its absence fails the run; IDSYNC_TEST_PG_PASS=0 leaves it out locally;
 * - exits non-zero when any lane fails, and always stops the DC, also on Ctrl-C / SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { unavailableReason, integrationRequired } from '../test/helpers/integration.js';
import { postgresUnavailable } from '../test/helpers/postgres.js';
import { sambaToEnv, startSambaDC, type SambaDC } from '../test/helpers/samba.js';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));

function findTests(dir: string): string[] {
  const out: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names.sort()) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

/**
 * The end-to-end suites the issue names as the ones that must hold on both stores (docs/store.md):
 * on the whole suite they run again on PostgreSQL.
 */
const STORE_SUITES = [
  'test/e2e/directories.test.ts',
  'test/e2e/delta.test.ts',
  'test/e2e/passwords-ldap.test.ts',
  'test/e2e/passwords-samba.test.ts',
  'test/e2e/kb2962509.test.ts',
];

/** A test needs the DC when it lives where the AD tests live or uses the Samba helper. */
function needsSamba(file: string): boolean {
  const rel = relative(root, file).split(sep).join('/');
  if (rel.startsWith('test/e2e/') || rel.startsWith('test/connectors/ad/') || rel.startsWith('test/drsuapi/samba')) return true;
  return /helpers\/samba(\.js)?['"]/.test(readFileSync(file, 'utf8'));
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const unit = args.includes('--unit');
  const selectors = args.filter((a) => !a.startsWith('--'));
  let files = selectors.length
    ? selectors.flatMap((s) => {
        const p = resolve(s);
        return statSync(p).isDirectory() ? findTests(p) : [p];
      })
    : findTests(join(root, 'test'));
  if (unit) files = files.filter((f) => !relative(root, f).split(sep).join('/').startsWith('test/e2e/'));
  if (!files.length) {
    console.error('run-tests: no test files selected');
    return 1;
  }

  let dc: SambaDC | undefined;
  const children: ChildProcess[] = [];
  const started = Date.now();
  let stopping = false;
  /** Starts the run's Samba AD DC; its description for the tests' IDSYNC_TEST_SAMBA. */
  const startDc = async (): Promise<string> => {
    const t0 = Date.now();
    process.stderr.write('run-tests: starting a Samba AD DC... ');
    // rpc: DRSUAPI (password hash sync over MS-DRSR) on the endpoint mapper's port 135
    dc = await startSambaDC(undefined, { services: ['ldap', 'kdc', 'rpc'] });
    process.stderr.write(`ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (${dc.dir})\n`);
    return sambaToEnv(dc);
  };
  const cleanup = async (): Promise<void> => {
    if (dc) {
      const d = dc;
      dc = undefined;
      await d.stop().catch((err: unknown) => console.error(`run-tests: stopping the Samba DC failed: ${String(err)}`));
    }
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    console.error(`run-tests: ${sig}, stopping...`);
    for (const c of children) c.kill(sig);
    void cleanup().then(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const wantSamba = files.some(needsSamba) || integrationRequired();
    const env = { ...process.env };
    if (wantSamba && !process.env.IDSYNC_TEST_SAMBA) {
      const reason = unavailableReason('samba');
      if (reason) {
        if (integrationRequired()) {
          console.error(`run-tests: IDSYNC_REQUIRE_INTEGRATION=1 but ${reason}`);
          return 1;
        }
        console.error(`run-tests: no Samba AD DC (${reason}); AD tests will be skipped`);
      } else {
        env.IDSYNC_TEST_SAMBA = await startDc();
      }
    }
    if (stopping) return 130;
    const oneLane = process.env.IDSYNC_TEST_LANES === '1';
    const pgPass = selectors.length === 0 && !unit ? postgresPass(env) : undefined;
    if (pgPass === null) return 1;
    const onSpawn = (c: ChildProcess): void => {
      children.push(c);
    };
    const tagged = !oneLane || pgPass !== undefined;
    const run = (lane: Lane, laneEnv = env): Promise<LaneResult> => runLane(lane, laneEnv, tagged, onSpawn);
    const samba = oneLane ? [] : files.filter(needsSamba);
    const chunks = oneLane ? [] : chunked(files.filter((f) => !needsSamba(f)), CHUNK_FILES);
    /** Takes the next chunk of the non-DC files until none is left. */
    const takeChunks = async (tag: string): Promise<LaneResult[]> => {
      const out: LaneResult[] = [];
      for (let chunk = chunks.shift(); chunk && !stopping; chunk = chunks.shift()) out.push(await run({ tag, files: chunk }));
      return out;
    };
    const dcLane = async (): Promise<LaneResult[]> => {
      const out: LaneResult[] = [];
      if (oneLane) out.push(await run({ tag: '', files }));
      else if (samba.length > 0) out.push(await run({ tag: 'dc', files: samba }));
      // The PostgreSQL pass uses the DC's fixed ports too: it follows the DC's files, never runs beside them.
      if (pgPass && !stopping) {
        // The suites seed the same accounts again (sAMAccountNames are domain-wide): a fresh DC.
        if (dc) {
          await cleanup();
          pgPass.env.IDSYNC_TEST_SAMBA = await startDc();
        }
        out.push(await run(pgPass.lane, pgPass.env));
      }
      return [...out, ...(await takeChunks('o2'))];
    };
    // The second lane takes its first chunk before the DC lane can (a selection of one chunk is `ot`).
    const otherLane = oneLane ? Promise.resolve([]) : takeChunks('ot');
    const results = (await Promise.all([dcLane(), otherLane])).flat();
    const total = results.reduce(
      // A file that fails outside its tests (a hook, an import) is a top-level "not ok" that node's
      // own "# fail" count may leave out: count it too.
      (t, r) => ({ tests: t.tests + r.tests, pass: t.pass + r.pass, fail: t.fail + Math.max(r.fail, r.failedFiles.length), skipped: t.skipped + r.skipped }),
      { tests: 0, pass: 0, fail: 0, skipped: 0 },
    );
    const failed = results.flatMap((r) => r.failedFiles);
    // CI shows only the end of the output: each failure's own message goes last, beside the summary.
    const failures = results.flatMap((r) => r.failures);
    if (failures.length) console.log(`run-tests: what failed, in detail:\n${failures.join('\n')}`);
    if (failed.length) console.log(`run-tests: failed:\n${failed.map((f) => `  ${f}`).join('\n')}`);
    console.log(
      `run-tests: ${total.tests} tests, ${total.pass} passed, ${total.fail} failed, ${total.skipped} skipped` +
        ` in ${oneLane ? '1 lane' : '2 lanes'} (${results.length} test process${results.length === 1 ? '' : 'es'}), ${((Date.now() - started) / 1000).toFixed(0)} s`,
    );
    return results.some((r) => r.code !== 0) ? 1 : 0;
  } finally {
    await cleanup();
  }
}

/**
 * The second run of STORE_SUITES on PostgreSQL: undefined when it is left out (not installed
 * outside CI, or IDSYNC_TEST_PG_PASS=0), null when CI requires it and PostgreSQL is missing.
 */
function postgresPass(env: NodeJS.ProcessEnv): { lane: Lane; env: NodeJS.ProcessEnv } | undefined | null {
  if (process.env.IDSYNC_TEST_PG_PASS === '0' || process.env.IDSYNC_TEST_STORE === 'postgres') return undefined;
  if (process.env.IDSYNC_TEST_SAMBA) {
    // A DC given from outside cannot be replaced by a fresh one, and the suites' accounts exist in it.
    console.error('run-tests: IDSYNC_TEST_SAMBA is given: the store suites run on SQLite only (unset it for the PostgreSQL pass)');
    return undefined;
  }
  const reason = postgresUnavailable();
  if (reason) {
    if (integrationRequired()) {
      console.error(`run-tests: IDSYNC_REQUIRE_INTEGRATION=1 but ${reason}: the store suites must also run on PostgreSQL`);
      return null;
    }
    console.error(`run-tests: no PostgreSQL (${reason}); the store suites run on SQLite only`);
    return undefined;
  }
  return { lane: { tag: 'pg', files: STORE_SUITES.map((f) => join(root, f)) }, env: { ...env, IDSYNC_TEST_STORE: 'postgres' } };
}

interface Lane {
  tag: string;
  files: string[];
}

interface LaneResult {
  code: number;
  tests: number;
  pass: number;
  fail: number;
  skipped: number;
  failedFiles: string[];
  /** Each failed test's name and TAP diagnostic (error, location, stack), for the closing report. */
  failures: string[];
}

/**
 * Files per process of the non-DC files: small enough that the lanes end within a few files of each
 * other, large enough that a process's start (≈ 1 s with tsx) does not add up.
 */
const CHUNK_FILES = 4;

function chunked(files: string[], size: number): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < files.length; i += size) out.push(files.slice(i, i + size));
  return out;
}

/**
 * One `node --test` process over a lane's files. Its TAP output is passed through line by line with the
 * lane's tag, and its closing counts (`# tests`, `# pass`, ...) are read for the run's summary.
 */
function runLane(lane: Lane, env: NodeJS.ProcessEnv, tagged: boolean, onSpawn: (c: ChildProcess) => void): Promise<LaneResult> {
  const nodeArgs = [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=1',
    '--test-reporter=tap',
    ...lane.files.map((f) => relative(process.cwd(), f) || f),
  ];
  const child = spawn(process.execPath, nodeArgs, { stdio: ['ignore', 'pipe', 'pipe'], env });
  onSpawn(child);
  const result: LaneResult = { code: 0, tests: 0, pass: 0, fail: 0, skipped: 0, failedFiles: [], failures: [] };
  const prefix = tagged && lane.tag ? `${lane.tag}| ` : '';
  const collect = failureCollector(prefix, (f) => result.failures.push(f));
  const count = (line: string): void => {
    collect(line);
    const m = /^# (tests|pass|fail|skipped) (\d+)$/.exec(line);
    if (m) result[m[1] as 'tests' | 'pass' | 'fail' | 'skipped'] = Number(m[2]);
    // A failed top-level test is one file (or a suite at the top of one).
    const f = /^not ok \d+ - (.*)$/.exec(line);
    if (f) result.failedFiles.push(`${prefix}${f[1]}`);
  };
  createInterface({ input: child.stdout! }).on('line', (line) => {
    count(line);
    process.stdout.write(`${prefix}${line}\n`);
  });
  createInterface({ input: child.stderr! }).on('line', (line) => process.stderr.write(`${prefix}${line}\n`));
  return new Promise((res) => {
    child.once('close', (c, s) => {
      result.code = c ?? (s ? 1 : 0);
      res(result);
    });
  });
}

/** Diagnostic lines kept per failure: the message and the top of the stack are what matter. */
const MAX_FAILURE_LINES = 40;

/**
 * Reads TAP line by line and hands over each failed test that failed by itself (not a suite that
 * failed because a subtest did) with its YAML block, under its parents' names.
 */
function failureCollector(prefix: string, report: (failure: string) => void): (line: string) => void {
  const names: string[] = [];
  let open: { indent: string; name: string; lines: string[]; parentOnly: boolean } | undefined;
  return (line) => {
    if (open) {
      if (line === `${open.indent}  ...`) {
        if (!open.parentOnly) {
          const kept = open.lines.length > MAX_FAILURE_LINES ? [...open.lines.slice(0, MAX_FAILURE_LINES), `${open.indent}  (${open.lines.length - MAX_FAILURE_LINES} more lines)`] : open.lines;
          report([`${prefix}not ok - ${open.name}`, ...kept.map((l) => `${prefix}${l}`)].join('\n'));
        }
        open = undefined;
      } else if (line !== `${open.indent}  ---` && !/\(node:(internal|async_hooks)|duration_ms:/.test(line)) {
        // The test runner's own stack frames and the timing say nothing about the failure.
        open.lines.push(line);
        if (/failureType: 'subtestsFailed'/.test(line)) open.parentOnly = true;
      }
      return;
    }
    const sub = /^(\s*)# Subtest: (.*)$/.exec(line);
    if (sub) {
      names.length = sub[1]!.length / 4;
      names.push(sub[2]!);
      return;
    }
    const f = /^(\s*)not ok \d+ - (.*)$/.exec(line);
    if (f) {
      const depth = f[1]!.length / 4;
      open = { indent: f[1]!, name: [...names.slice(0, depth), f[2]!].join(' > '), lines: [], parentOnly: false };
    }
  };
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('run-tests:', err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
