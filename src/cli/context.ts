import type { Command } from 'commander';
import { configPathFrom, loadConfig, type LoadedConfig } from '../config/load.js';
import { openContext, type EngineContext, type OpenContextOptions } from '../engine/context.js';

/** A command group: adds its commands to the program (listed in commands/index.ts). */
export type RegisterCommand = (program: Command) => void;

/** The root program's --config option, from any subcommand. */
export function configFile(cmd: Command): string {
  let root: Command = cmd;
  while (root.parent) root = root.parent;
  return configPathFrom(root.opts<{ config?: string }>().config);
}

export function loadFor(cmd: Command): LoadedConfig {
  return loadConfig(configFile(cmd));
}

/** Opens the configuration, database and credential store; closes them after fn. */
export async function withContext<T>(cmd: Command, fn: (ctx: EngineContext) => Promise<T>, opts: OpenContextOptions = {}): Promise<T> {
  const ctx = openContext(loadFor(cmd), opts);
  try {
    return await fn(ctx);
  } finally {
    ctx.close();
  }
}
