import type { Command } from 'commander';
import { runDemo } from '../../demo/run-demo.js';
import { EXIT } from '../exit-codes.js';
import { endProgress, printJson, println, throttledProgress } from '../output.js';
import { StopSignals } from '../signals.js';
import type { RegisterCommand } from '../context.js';
import { printRun } from './sync.js';

export const registerDemoCommands: RegisterCommand = (program) => {
  program
    .command('demo')
    .description('Start a local cloud directory, sync a bundled sample directory into it, and show how to query it')
    .option('--dir <dir>', 'working folder for the demo (wiped and recreated on each run)', './idsync-demo')
    .option('--port <port>', 'port of the demo cloud directory (a free one is used if taken)', '8080')
    .option('--users <n>', 'users in the sample directory', '300')
    .option('--no-serve', 'stop the cloud directory and exit after the cycle (for scripts)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { dir: string; port: string; users: string; serve: boolean; json?: boolean }, _cmd: Command) => {
      const started = Date.now();
      const result = await runDemo({
        dir: opts.dir,
        port: Number(opts.port),
        users: Math.max(1, Math.min(100_000, Number(opts.users) || 300)),
        onProgress: opts.json ? undefined : throttledProgress(),
      });
      endProgress();
      // The cloud directory keeps running once the result is out: the handlers first (signals.ts).
      const signals = opts.serve ? new StopSignals() : undefined;
      try {
        if (opts.json) {
          printJson({ cloudUrl: result.cloudUrl, configFile: result.configFile, tokenFile: result.tokenFile, sample: result.sample, run: result.run });
        } else {
          println(`Sample directory: ${result.sample.users} users and ${result.sample.groups} groups (some nested) in ${result.dir}/sample-directory.ldif`);
          println(`Cloud directory:  ${result.cloudUrl} (data in ${result.dir}/cloud)\n`);
          printRun(result.run);
          println(`\nDone in ${((Date.now() - started) / 1000).toFixed(1)}s. Query the cloud directory (SCIM 2.0) with the token in ${result.tokenFile}:\n`);
          println(`  TOKEN=$(cat ${result.tokenFile})`);
          println(`  curl -s -H "Authorization: Bearer $TOKEN" '${result.cloudUrl}/scim/v2/Users?filter=title%20eq%20%22SRE%22&attributes=userName,displayName'`);
          println(`  curl -s -H "Authorization: Bearer $TOKEN" '${result.cloudUrl}/scim/v2/Groups?filter=displayName%20eq%20%22All%20Staff%22'`);
          println(`\nRun another cycle against it (nothing changed, so nothing is exported):\n`);
          // `npm ci` does not put `idsync` on PATH; npx finds this package's own bin from the checkout.
          println(`  npx idsync -c ${result.configFile} sync      # or \`idsync ...\` once \`npm link\` put it on PATH`);
        }
        process.exitCode = result.run.status === 'success' ? EXIT.OK : EXIT.FAILED;
        if (signals) {
          if (!opts.json) println(`\nThe cloud directory keeps running; press Ctrl-C to stop it.`);
          await signals.first;
        }
      } finally {
        signals?.dispose();
      }
      await result.stop();
    });
};
