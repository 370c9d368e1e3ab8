/**
 * `idsync agent samba`: the password agent that runs on a Samba AD domain controller (as root, to
 * open private/ldap_priv/ldapi). It follows password changes with DirSync, computes OrgId hashes on
 * the DC and forwards only { anchor, orgIdHash, changedAt } to the sync service.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { httpForwarder, directForwarder } from '../../agent/forward.js';
import { SambaPasswordAgent, type Forwarder } from '../../agent/samba.js';
import { IdsyncError, toIdsyncError } from '../../core/errors.js';
import { withContext } from '../context.js';
import { println } from '../output.js';
import { StopSignals } from '../signals.js';
import type { RegisterCommand } from '../context.js';
import { openPipeline } from './passwords.js';

interface AgentOptions {
  ldapi: string;
  base: string;
  state: string;
  forward?: string;
  forwardMode: 'http' | 'direct';
  tokenFile?: string;
  connector?: string;
  pollMs: string;
  full?: boolean;
  once?: boolean;
  deliver?: boolean;
  json?: boolean;
}

function agentToken(file: string | undefined): () => string {
  return () => {
    const fromEnv = process.env.IDSYNC_AGENT_TOKEN;
    if (fromEnv) return fromEnv.trim();
    if (!file) {
      throw new IdsyncError('CREDENTIAL_MISSING', 'no agent token: pass --token-file FILE or set IDSYNC_AGENT_TOKEN', {
        hint: 'Use the token stored on the sync service with `idsync credentials set agent`; never pass it as an argument.',
      });
    }
    return readFileSync(file, 'utf8').trim(); // read at use time: a rotated token is picked up
  };
}

async function runAgent(opts: AgentOptions, forward: Forwarder, afterRound?: () => Promise<void>): Promise<void> {
  const pollMs = Number(opts.pollMs);
  if (!Number.isInteger(pollMs) || pollMs < 100) throw new IdsyncError('CONFIG_INVALID', '--poll-ms must be an integer of at least 100');
  // --json: one JSON object per line (JSON lines), so a log shipper can read the agent's output.
  const log = (o: Record<string, unknown>) => (opts.json ? println(JSON.stringify({ time: new Date().toISOString(), ...o })) : println(`${new Date().toISOString()} ${Object.entries(o).map(([k, v]) => `${k}=${String(v)}`).join(' ')}`));
  const agent = new SambaPasswordAgent({
    ldapi: opts.ldapi,
    base: opts.base,
    stateDir: opts.state,
    forward,
    pollMs,
    full: opts.full ?? false,
    onRound: (r) => log({ event: 'forwarded', changes: r.changes, forwarded: r.forwarded }),
    onError: (err) => {
      const e = toIdsyncError(err);
      log({ event: 'error', code: e.code, message: e.message });
    },
  });
  if (opts.once) {
    const r = await agent.pollOnce();
    await afterRound?.();
    await agent.stop();
    log({ event: 'done', changes: r.changes, forwarded: r.forwarded });
    return;
  }
  const signals = new StopSignals(); // before it says it started (signals.ts)
  try {
    agent.start();
    log({ event: 'started', base: opts.base, pollMs });
    await signals.first;
  } finally {
    signals.dispose();
  }
  await agent.stop();
}

export const registerAgentCommands: RegisterCommand = (program) => {
  const agent = program.command('agent').description('Password agents that run on a domain controller');
  agent
    .command('samba')
    .description('follow password changes on this Samba AD DC (DirSync over the privileged ldapi socket) and forward OrgId hashes')
    .requiredOption('--ldapi <path>', 'the DC\'s privileged socket, e.g. /var/lib/samba/private/ldap_priv/ldapi')
    .requiredOption('--base <dn>', 'the domain naming context, e.g. DC=example,DC=com')
    .requiredOption('--state <dir>', 'where the DirSync cookie is kept (e.g. /var/lib/idsync-agent)')
    .option('--forward <url>', 'the sync service, e.g. https://sync.example.com:8443 (http mode)')
    .option('--forward-mode <mode>', 'http (to --forward) or direct (the local idsync.db of --config)', 'http')
    .option('--token-file <file>', 'file holding the agent token (or IDSYNC_AGENT_TOKEN)')
    .option('--connector <name>', 'the AD connector of this domain in the sync service\'s configuration')
    .option('--poll-ms <ms>', 'poll interval', '1000')
    .option('--full', 'ignore the saved cookie once: send every user\'s hash again (full password sync)')
    .option('--once', 'one round, then exit')
    .option('--deliver', 'direct mode: also deliver to the cloud from this process')
    .option('--json', 'JSON lines output')
    .addHelpText(
      'after',
      `
Only { anchor, orgIdHash, changedAt } leave the DC: never an NT hash or a password.

Examples:
  idsync agent samba --ldapi /var/lib/samba/private/ldap_priv/ldapi --base DC=example,DC=com \\
    --state /var/lib/idsync-agent --forward https://sync.example.com:8443 --token-file /etc/idsync/agent.token
  idsync -c /etc/idsync/idsync.yaml agent samba --ldapi ... --base ... --state ... --forward-mode direct --deliver`,
    )
    .action(async (opts: AgentOptions, cmd: Command) => {
      if (opts.forwardMode === 'direct') {
        await withContext(cmd, async (ctx) => {
          const { pipeline, cloud } = openPipeline(ctx);
          try {
            if (opts.deliver && !opts.once) pipeline.start();
            await runAgent(opts, directForwarder(pipeline, opts.connector), opts.deliver ? async () => void (await pipeline.deliverOnce()) : undefined);
          } finally {
            await pipeline.stop();
            await cloud.close().catch(() => undefined);
          }
        });
        return;
      }
      if (opts.forwardMode !== 'http') throw new IdsyncError('CONFIG_INVALID', `--forward-mode must be http or direct, not "${opts.forwardMode}"`);
      if (!opts.forward) throw new IdsyncError('CONFIG_INVALID', '--forward <url> is required in http mode', { hint: 'Or use --forward-mode direct with --config.' });
      await runAgent(opts, httpForwarder(opts.forward, agentToken(opts.tokenFile), opts.connector));
    });
};
