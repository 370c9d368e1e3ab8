/**
 * A worker thread running a module that sits beside its caller: the built `<name>.js`, or, when the
 * caller runs from source (tests, benches), `<name>.ts` with tsx's loader registered in the worker
 * (a worker thread does not inherit it).
 */
import { existsSync } from 'node:fs';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** `from`: the caller's import.meta.url; `name`: the module's file name without extension. */
export function moduleWorker(from: string, name: string, options: WorkerOptions): Worker {
  const ts = new URL(`./${name}.ts`, from);
  if (from.endsWith('.ts') && existsSync(ts)) {
    // tsx resolved here, not by the eval'd code: that resolves from the process's working
    // directory, and a service started by `idsync service start` runs in the configuration's.
    const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(ts.href)}); })`;
    return new Worker(boot, { ...options, eval: true });
  }
  return new Worker(new URL(`./${name}.js`, from), options);
}
