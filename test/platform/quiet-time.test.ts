import { describe, expect, it } from 'vitest';
import { QuietTime } from '../../src/platform/quiet-time.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves to the ms a wait took. */
async function timed(p: Promise<void>): Promise<number> {
  const t = performance.now();
  await p;
  return performance.now() - t;
}

describe('QuietTime', () => {
  it('lets work run at once when nothing happened lately, and never waits with quietMs 0', async () => {
    expect(await timed(new QuietTime({ quietMs: 200, maxDelayMs: 5000 }).wait())).toBeLessThan(20);
    const never = new QuietTime({ quietMs: 0, maxDelayMs: 5000 });
    never.activity();
    expect(await timed(never.wait())).toBeLessThan(20);
  });

  it('holds work until executions pause for quietMs', async () => {
    const q = new QuietTime({ quietMs: 150, maxDelayMs: 5000 });
    q.activity();
    let done = false;
    const waited = timed(q.wait()).then((ms) => ((done = true), ms));
    // Activity every 50 ms keeps the work waiting...
    for (let i = 0; i < 6; i++) {
      await sleep(50);
      expect(done).toBe(false);
      q.activity();
    }
    // ...and it runs about quietMs after the last one.
    const ms = await waited;
    expect(ms).toBeGreaterThanOrEqual(300 + 140);
    expect(ms).toBeLessThan(300 + 1000);
  });

  it('never holds work longer than maxDelayMs after it was queued', async () => {
    const q = new QuietTime({ quietMs: 100, maxDelayMs: 300 });
    const busy = setInterval(() => q.activity(), 20);
    try {
      q.activity();
      const ms = await timed(q.wait());
      expect(ms).toBeGreaterThanOrEqual(290);
      expect(ms).toBeLessThan(1200);
      // Work queued long ago goes at once.
      expect(await timed(q.wait(performance.now() - 1000))).toBeLessThan(20);
    } finally {
      clearInterval(busy);
    }
  });

  it('lets urgent work go as soon as an execution says it has become urgent, and everything go on release', async () => {
    const q = new QuietTime({ quietMs: 10_000, maxDelayMs: 60_000 });
    q.activity();
    let urgent = false;
    const u = timed(q.wait(performance.now(), () => urgent));
    const other = timed(q.wait());
    await sleep(50);
    urgent = true;
    q.activity();
    expect(await u).toBeLessThan(200);
    q.release();
    expect(await other).toBeLessThan(300);
  });
});
