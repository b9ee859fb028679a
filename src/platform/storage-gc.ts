/**
 * Reclaims the space of blobs nothing references any more: deleted snapshots, expired or cleared cached results,
 * swept fork state. Deleting those drops references at once; their blobs go when this runs the BlobStore's gc,
 * every FAAS_STORAGE_GC_INTERVAL_S, in a pause between executions (unlinking thousands of chunk files costs CPU).
 */
import type { BlobStore, GcReport } from '../storage/index.js';
import { numberFromEnv } from './env-numbers.js';
import type { PlatformMetrics } from './metrics.js';
import type { QuietTime } from './quiet-time.js';

export interface StorageGcSettings {
  /**
   * How often gc runs (FAAS_STORAGE_GC_INTERVAL_S; 0: never, `faas storage gc` by hand). Default 3600 s, but 0 with
   * an S3 tier: gc removes blobs from the bucket too, and a bucket shared by several gateways holds blobs that only
   * the others reference (their snapshots, chunks deduplicated across nodes). Set it where one gateway owns the
   * bucket; FAAS_L1_MAX_BYTES bounds the local disk either way.
   */
  intervalMs: number;
  /** Unreferenced blobs younger than this are kept (FAAS_STORAGE_GC_GRACE_S, default 3600 s). */
  graceMs: number;
}

export function storageGcSettingsFromEnv(env: NodeJS.ProcessEnv, hasObjectStore: boolean): StorageGcSettings {
  return {
    intervalMs: numberFromEnv(env, 'FAAS_STORAGE_GC_INTERVAL_S', hasObjectStore ? 0 : 3600, 0) * 1000,
    graceMs: numberFromEnv(env, 'FAAS_STORAGE_GC_GRACE_S', 3600, 0) * 1000,
  };
}

export class StorageGc {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<GcReport | null> | null = null;
  /** Aborted by close(): stops a run under way (the rest waits for the next start) and one still waiting to start. */
  private readonly stop = new AbortController();
  /** The last run's outcome, for whoever asks why space is (not) coming back. */
  last: { at: Date; report: GcReport } | { at: Date; error: string } | null = null;

  constructor(
    private readonly blobs: BlobStore,
    private readonly quiet: QuietTime,
    private readonly metrics: PlatformMetrics,
    private readonly settings: StorageGcSettings,
  ) {}

  start(): void {
    if (this.settings.intervalMs <= 0 || this.timer) return;
    this.timer = setInterval(() => void this.runOnce(), this.settings.intervalMs);
    this.timer.unref();
  }

  /** Runs gc once (after a pause in executions); a run already under way is joined, not doubled. */
  runOnce(): Promise<GcReport | null> {
    this.running ??= this.run().finally(() => (this.running = null));
    return this.running;
  }

  private async run(): Promise<GcReport | null> {
    await this.quiet.wait();
    if (this.stop.signal.aborted) return null;
    try {
      const report = await this.blobs.gc({ graceMs: this.settings.graceMs, signal: this.stop.signal });
      this.last = { at: new Date(), report };
      this.metrics.storageGcRemovedBlobs.inc(report.removed);
      this.metrics.storageGcRemovedBytes.inc(report.removedBytes);
      return report;
    } catch (err) {
      // The next round tries again; a failing gc must not take the gateway down.
      this.last = { at: new Date(), error: err instanceof Error ? err.message : String(err) };
      this.metrics.storageGcFailures.inc();
      return null;
    }
  }

  /** Stops the schedule and a run under way (at its next blob), and waits for it, so the store is not closed under it. */
  async close(): Promise<void> {
    this.stop.abort();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }
}
