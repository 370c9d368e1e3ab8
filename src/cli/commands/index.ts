/** Every command group, in the order `idsync --help` lists them. Add a group here. */
import type { RegisterCommand } from '../context.js';
import { registerAgentCommands } from './agent.js';
import { registerCloudCommands } from './cloud.js';
import { registerConfigureCommands } from './configure.js';
import { registerConnectorsCommands } from './connectors.js';
import { registerConsoleCommands } from './console.js';
import { registerCredentialsCommands } from './credentials.js';
import { registerDemoCommands } from './demo.js';
import { registerDoctorCommands } from './doctor.js';
import { registerEventsCommands } from './events.js';
import { registerHashCommands } from './hash.js';
import { registerInitCommands } from './init.js';
import { registerPasswordsCommands } from './passwords.js';
import { registerRunsCommands } from './runs.js';
import { registerServeCommands } from './serve.js';
import { registerServiceCommands } from './service.js';
import { registerStoreCommands } from './store.js';
import { registerSyncCommands } from './sync.js';

export const commands: RegisterCommand[] = [
  registerInitCommands,
  registerConfigureCommands,
  registerSyncCommands,
  registerServeCommands,
  registerServiceCommands,
  registerConsoleCommands,
  registerDoctorCommands,
  registerRunsCommands,
  registerConnectorsCommands,
  registerCredentialsCommands,
  registerStoreCommands,
  registerEventsCommands,
  registerPasswordsCommands,
  registerHashCommands,
  registerCloudCommands,
  registerDemoCommands,
  registerAgentCommands,
];
