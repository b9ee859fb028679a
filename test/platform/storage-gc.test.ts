import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PlatformMetrics } from '../../src/platform/metrics.js';
import { QuietTime } from '../../src/platform/quiet-time.js';
import { StorageGc } from '../../src/platform/storage-gc.js';
import type { BlobStore, GcReport } from '../../src/storage/index.js';

// The schedule around the BlobStore's gc (the gc itself runs on a real store in test/modes/storage-gc.test.ts):
// on a fake clock, with a stand-in for the store.
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
});
afterEach(() => {
  vi.useRealTimers();
});

const REPORT: GcReport = { removed: 3, removedBytes: 4096, kept: 7, orphanFiles: 0, staleClaims: 0 };

function setUp(gc: () => Promise<GcReport>) {
  const quiet = new QuietTime({ quietMs: 150, maxDelayMs: 60_000 });
  const metrics = new PlatformMetrics();
  const blobs = { gc: vi.fn(gc) } as unknown as BlobStore & { gc: ReturnType<typeof vi.fn> };
  const storageGc = new StorageGc(blobs, quiet, metrics, { intervalMs: 1000, graceMs: 5000 });
  const count = async (name: string) => (await metrics.registry.getSingleMetric(name)!.get()).values[0]?.value ?? 0;
  return { quiet, blobs, storageGc, count };
}

describe('StorageGc', () => {
  it('runs every interval after a pause in executions, with its grace, and counts what it removed', async () => {
    const { quiet, blobs, storageGc, count } = setUp(async () => REPORT);
    storageGc.start();
    await vi.advanceTimersByTimeAsync(950);
    quiet.activity(); // an execution at 950 ms: the run due at 1000 ms waits for 150 ms without any (1100 ms)
    await vi.advanceTimersByTimeAsync(100);
    expect(blobs.gc).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(60);
    expect(blobs.gc).toHaveBeenCalledTimes(1);
    expect(blobs.gc).toHaveBeenCalledWith({ graceMs: 5000, signal: expect.any(AbortSignal) });
    await vi.advanceTimersByTimeAsync(1000);
    expect(blobs.gc).toHaveBeenCalledTimes(2); // at 2000 ms: no execution since
    expect([await count('faas_storage_gc_removed_blobs_total'), await count('faas_storage_gc_removed_bytes_total')]).toEqual([6, 8192]);
    expect(storageGc.last).toMatchObject({ report: REPORT });
    await storageGc.close();
    await vi.advanceTimersByTimeAsync(5000);
    expect(blobs.gc).toHaveBeenCalledTimes(2);
  });

  it('counts a failed run and tries again at the next interval, without throwing', async () => {
    let fail = true;
    const { blobs, storageGc, count } = setUp(async () => {
      if (fail) throw new Error('disk on fire');
      return REPORT;
    });
    storageGc.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect(storageGc.last).toMatchObject({ error: 'disk on fire' });
    expect(await count('faas_storage_gc_failures_total')).toBe(1);
    fail = false;
    await vi.advanceTimersByTimeAsync(1000);
    expect(blobs.gc).toHaveBeenCalledTimes(2);
    expect(storageGc.last).toMatchObject({ report: REPORT });
    await storageGc.close();
  });

  it('close() stops a run still waiting for a pause (once the waiters are let go) and waits for one under way', async () => {
    let finish!: (r: GcReport) => void;
    const { quiet, blobs, storageGc } = setUp(() => new Promise<GcReport>((r) => (finish = r)));
    // Waiting for a pause: close lets it go without running gc.
    quiet.activity();
    const waiting = storageGc.runOnce();
    const closed = storageGc.close();
    quiet.release();
    expect(await waiting).toBeNull();
    await closed;
    expect(blobs.gc).not.toHaveBeenCalled();

    // Under way: close waits for it (the store must not be closed under a running gc).
    const second = setUp(() => new Promise<GcReport>((r) => (finish = r)));
    const running = second.storageGc.runOnce();
    await vi.advanceTimersByTimeAsync(0);
    expect(second.blobs.gc).toHaveBeenCalledTimes(1);
    let done = false;
    const closing = second.storageGc.close().then(() => (done = true));
    await vi.advanceTimersByTimeAsync(10);
    expect(done).toBe(false);
    finish(REPORT);
    await closing;
    expect(await running).toEqual(REPORT);
  });

  it('never runs with interval 0, and joins a run under way instead of starting a second', async () => {
    const { quiet, blobs, storageGc } = setUp(async () => REPORT);
    const off = new StorageGc(blobs, quiet, new PlatformMetrics(), { intervalMs: 0, graceMs: 0 });
    off.start();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(blobs.gc).not.toHaveBeenCalled();
    const [a, b] = [storageGc.runOnce(), storageGc.runOnce()];
    expect(a).toBe(b);
    await a;
    expect(blobs.gc).toHaveBeenCalledTimes(1);
  });
});
