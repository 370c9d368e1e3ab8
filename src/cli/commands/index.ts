/**
 * Every command group, in the order `idsync --help` lists them. Add a group here: its name is its
 * top-level command (`idsync <name> ...`) and its file's name.
 *
 * A group is loaded only when it runs (main.ts): each file pulls in what its commands use, and
 * loading all of them (fastify, pg, jose, undici, prom-client, ...) took ≈ 0.4 s of every command's
 * start, `idsync --version` included. `idsync --help` and a mistyped command load them all.
 */
import type { RegisterCommand } from '../context.js';

export interface CommandGroup {
  name: string;
  load: () => Promise<RegisterCommand>;
}

export const commandGroups: readonly CommandGroup[] = [
  { name: 'init', load: async () => (await import('./init.js')).registerInitCommands },
  { name: 'configure', load: async () => (await import('./configure.js')).registerConfigureCommands },
  { name: 'sync', load: async () => (await import('./sync.js')).registerSyncCommands },
  { name: 'serve', load: async () => (await import('./serve.js')).registerServeCommands },
  { name: 'service', load: async () => (await import('./service.js')).registerServiceCommands },
  { name: 'console', load: async () => (await import('./console.js')).registerConsoleCommands },
  { name: 'doctor', load: async () => (await import('./doctor.js')).registerDoctorCommands },
  { name: 'runs', load: async () => (await import('./runs.js')).registerRunsCommands },
  { name: 'connectors', load: async () => (await import('./connectors.js')).registerConnectorsCommands },
  { name: 'credentials', load: async () => (await import('./credentials.js')).registerCredentialsCommands },
  { name: 'store', load: async () => (await import('./store.js')).registerStoreCommands },
  { name: 'events', load: async () => (await import('./events.js')).registerEventsCommands },
  { name: 'passwords', load: async () => (await import('./passwords.js')).registerPasswordsCommands },
  { name: 'hash', load: async () => (await import('./hash.js')).registerHashCommands },
  { name: 'cloud', load: async () => (await import('./cloud.js')).registerCloudCommands },
  { name: 'demo', load: async () => (await import('./demo.js')).registerDemoCommands },
  { name: 'agent', load: async () => (await import('./agent.js')).registerAgentCommands },
];
