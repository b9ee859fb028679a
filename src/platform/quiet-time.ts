/**
 * Background work (removing finished sandboxes, refilling warm pools) waits for a pause in ephemeral
 * executions. Each such job costs the engine 50–150 ms of CPU; on a small machine it runs beside the executions
 * being answered and slows a 4 ms pooled execution to 20–40 ms. Work waits at most `maxDelayMs` after it was
 * queued, so a steady stream of executions delays it but never starves it.
 */
export interface QuietTimeOptions {
  /** A pause this long (ms) since the last execution started or ended lets background work run; 0 never waits. */
  quietMs: number;
  /** The longest background work waits (ms) after it was queued. */
  maxDelayMs: number;
}

interface Waiter {
  since: number;
  /** Work that must not wait any longer (checked whenever an execution starts or ends). */
  urgent: (() => boolean) | undefined;
  resolve: () => void;
}

export class QuietTime {
  private lastActivity = -Infinity;
  private readonly waiters: Waiter[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: QuietTimeOptions) {}

  /** An execution started or ended. */
  activity(): void {
    this.lastActivity = performance.now();
    if (this.waiters.some((w) => w.urgent?.())) this.check();
  }

  /**
   * Resolves once executions pause, `maxDelayMs` after `since` (a `performance.now()` time) at the latest, or as
   * soon as `urgent` says so.
   */
  wait(since = performance.now(), urgent?: () => boolean): Promise<void> {
    if (this.due({ since, urgent }, performance.now())) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push({ since, urgent, resolve });
      this.schedule();
    });
  }

  /** Lets everything waiting go now (on shutdown). */
  release(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  private due(w: Pick<Waiter, 'since' | 'urgent'>, now: number): boolean {
    return now - this.lastActivity >= this.opts.quietMs || now - w.since >= this.opts.maxDelayMs || w.urgent?.() === true;
  }

  private schedule(): void {
    if (this.timer || this.waiters.length === 0) return;
    const now = performance.now();
    const quietAt = this.lastActivity + this.opts.quietMs;
    const oldestAt = Math.min(...this.waiters.map((w) => w.since)) + this.opts.maxDelayMs;
    this.timer = setTimeout(() => this.check(), Math.max(1, Math.min(quietAt, oldestAt) - now));
  }

  private check(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const now = performance.now();
    for (let i = 0; i < this.waiters.length; ) {
      const w = this.waiters[i]!;
      if (this.due(w, now)) {
        this.waiters.splice(i, 1);
        w.resolve();
      } else {
        i++;
      }
    }
    this.schedule();
  }
}
