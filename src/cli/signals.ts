/**
 * SIGINT and SIGTERM for the commands that run until they are stopped (`cloud serve`, `serve`,
 * `agent`, `demo --serve`, `events --follow`).
 *
 * Installed before the command says it is ready, not after: a supervisor or a test that reads the
 * "listening" line and signals at once must meet this handler, not the signal's default action
 * (the process killed, nothing closed). With the handler installed right after the line, 2–3 of
 * 30 `idsync cloud serve --json` runs signalled as soon as the JSON arrived died by SIGINT: the
 * process can lose its core between writing the line and the next statement.
 */
export class StopSignals {
  /** The first SIGINT or SIGTERM since this was made. */
  readonly first: Promise<NodeJS.Signals>;
  private count = 0;
  private resolveFirst!: (sig: NodeJS.Signals) => void;
  private readonly handler = (sig: NodeJS.Signals): void => {
    this.count++;
    if (this.count === 1) this.resolveFirst(sig);
    else this.onAgain?.(sig);
  };

  /** `onAgain`: each later signal (`serve`, while it stops: exit without waiting). */
  constructor(private readonly onAgain?: (sig: NodeJS.Signals) => void) {
    this.first = new Promise((resolve) => (this.resolveFirst = resolve));
    process.on('SIGINT', this.handler);
    process.on('SIGTERM', this.handler);
  }

  /** Whether a signal came already. */
  get received(): boolean {
    return this.count > 0;
  }

  /** The handlers off again (the command has stopped). */
  dispose(): void {
    process.off('SIGINT', this.handler);
    process.off('SIGTERM', this.handler);
  }
}
