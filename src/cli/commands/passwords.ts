/**
 * `idsync passwords status USER`, `idsync passwords resync [--all | USER]`, `idsync passwords deliver`:
 * the password hash sync queue and per-user history. Nothing here prints a password or a hash.
 */
import type { Command } from 'commander';
import type { CloudClient } from '../../connectors/cloud/client.js';
import { createCloudClient } from '../../connectors/registry.js';
import { IdsyncError } from '../../core/errors.js';
import { loadOrCreateKey } from '../../credentials/key.js';
import type { EngineContext } from '../../engine/context.js';
import { EventLog } from '../../events/log.js';
import { PasswordPipeline } from '../../passwords/pipeline.js';
import { describeOutbox, outboxStatus, passwordHistory } from '../../status/index.js';
import { withContext } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { printJson, println, table } from '../output.js';
import type { RegisterCommand } from '../context.js';
import { DrsStateStore } from '../../passwords/sources/drs.js';

/** Opens the pipeline on a command's context; the caller closes the returned client. */
export function openPipeline(ctx: EngineContext): { pipeline: PasswordPipeline; cloud: CloudClient } {
  const cloud = createCloudClient(ctx.loaded, ctx.credentials);
  const pipeline = new PasswordPipeline({
    db: ctx.db,
    cloud,
    events: new EventLog(ctx.db),
    key: loadOrCreateKey(ctx.loaded.dataDir).key,
    credentialRefused: () => ctx.credentials.refusedNow('cloud'),
  });
  return { pipeline, cloud };
}

/** The reason `passwords status` gives a waiting change while the cloud refuses the credential. */
export const WAITS_FOR_CLOUD_CREDENTIAL = 'waits: the cloud directory refused the stored credential; run `idsync credentials set cloud`';

/** The same while the cloud account is locked: the password was not checked, retyping it cannot help. */
export function waitsForLockedAccount(until: string): string {
  return `waits: the cloud account is locked until ${until}; idsync tries again then (the password was not checked: setting it again sooner cannot help)`;
}

export const registerPasswordsCommands: RegisterCommand = (program) => {
  const passwords = program.command('passwords').description('Password hash synchronization: per-user status, the queue, full resync');

  passwords
    .command('status')
    .description('show a user\'s password sync history (last 7 days) and the queue')
    .argument('<user>', 'sAMAccountName, userPrincipalName, uid, DN or anchor')
    .option('--json', 'print {user, outbox, records} as JSON')
    .addHelpText('after', '\nStatus values: Queued, Success, TargetNotExported (waits until the user exists in the cloud), Error (with the reason).\n\nExamples:\n  idsync passwords status alice\n  idsync passwords status alice@example.com --json')
    .action(async (user: string, opts: { json?: boolean }, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        // The status module reads the status log and event 657 alike, and the outbox as `doctor` does.
        const { users, records } = passwordHistory(ctx.db, ctx.events, user);
        const outbox = outboxStatus(ctx.db);
        // A change that waits because the cloud refused the stored credential (or locked its
        // account) is not tried again until it changes or the lock ends (that would spend sign-ins
        // towards the lockout), so it has no outcome to show: say why it waits, and what helps.
        const refusal = ctx.credentials.refusedNow('cloud');
        if (refusal && records[0]?.status === 'Queued' && records[0].reason === null) {
          records[0] = { ...records[0], reason: refusal.lockedSeconds !== undefined ? waitsForLockedAccount(refusal.nextAttemptAt) : WAITS_FOR_CLOUD_CREDENTIAL };
        }
        if (opts.json) {
          printJson({ user, known: users, outbox, records });
        } else if (records.length === 0) {
          const who = users.length === 0 ? `no user "${user}" in any connector space (run \`idsync sync\` if the user is new)` : `no password changes recorded for "${user}" (${users.map((u) => u.dn).join('; ')}) in the last 7 days`;
          println(`${who}; outbox: ${describeOutbox(outbox)}`);
        } else {
          println(table(records.map((r) => ({ ...r, source: r.source ?? '', reason: r.reason ?? '' })), ['at', 'status', 'source', 'anchor', 'reason']));
          println(`\noutbox: ${describeOutbox(outbox)}`);
        }
      });
    });

  passwords
    .command('resync')
    .description('full password sync: queue every user\'s (or one user\'s) last known hash again and re-read polled sources')
    .argument('[user]', 'one user (sAMAccountName, userPrincipalName, uid, DN or anchor)')
    .option('--all', 'every user')
    .option('--json', 'print {queued} as JSON')
    .addHelpText('after', '\nWith --all, connectors with `passwords: { source: drs }` re-read every hash from the DC at their next poll.\nThe Samba DC agent re-reads every password with `idsync agent samba ... --full`.\n\nExamples:\n  idsync passwords resync alice\n  idsync passwords resync --all && idsync passwords deliver')
    .action(async (user: string | undefined, opts: { all?: boolean; json?: boolean }, cmd: Command) => {
      if (!!user === !!opts.all) {
        throw new IdsyncError('CONFIG_INVALID', 'name one user or pass --all', { hint: 'e.g. `idsync passwords resync alice` or `idsync passwords resync --all`.' });
      }
      const queued = await withContext(cmd, async (ctx) => {
        const { pipeline, cloud } = openPipeline(ctx);
        try {
          const n = await pipeline.resync(opts.all ? { all: true } : { user: user! });
          // DC replication (source drs) starts over with a full pass at its next poll
          if (opts.all) new DrsStateStore(ctx.db).forget();
          return n;
        } finally {
          await cloud.close().catch(() => undefined);
        }
      });
      if (opts.json) printJson({ queued });
      else println(`${queued} user(s) queued; the service delivers them at its next poll (or run \`idsync passwords deliver\`)`);
    });

  passwords
    .command('deliver')
    .description('deliver the queued password hashes to the cloud directory now (one pass)')
    .option('--json', 'print {delivered, waiting, failed, outbox} as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const { counts, outbox } = await withContext(cmd, async (ctx) => {
        const { pipeline, cloud } = openPipeline(ctx);
        try {
          // Nothing is presented with a refused credential: say so, with the fix, rather than "0 delivered".
          const refusal = ctx.credentials.refusedNow('cloud');
          if (refusal) throw cloud.recordedRefusal(refusal);
          return { counts: await pipeline.deliverOnce(), outbox: outboxStatus(ctx.db) };
        } finally {
          await cloud.close().catch(() => undefined);
        }
      });
      if (opts.json) printJson({ ...counts, outbox });
      else println(`delivered ${counts.delivered}, waiting for the cloud user ${counts.waiting}, failed ${counts.failed}; outbox: ${describeOutbox(outbox)}`);
      if (counts.failed > 0) process.exitCode = EXIT.FAILED;
    });
};
