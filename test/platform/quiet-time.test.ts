import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { QuietTime } from '../../src/platform/quiet-time.js';

// On a fake clock (timers and performance.now): what is checked is when work is let go, not how late a loaded
// machine's timers fire.
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Moves the fake clock on, running the timers due and the promise jobs they start. */
const tick = (ms: number) => vi.advanceTimersByTimeAsync(ms);

/** The ms (on the fake clock) after which a wait ended, or null while it has not. */
function timed(p: Promise<void>): { ms: number | null } {
  const t = performance.now();
  const r = { ms: null as number | null };
  void p.then(() => (r.ms = performance.now() - t));
  return r;
}

describe('QuietTime', () => {
  it('lets work run at once when nothing happened lately, and never waits with quietMs 0', async () => {
    const fresh = timed(new QuietTime({ quietMs: 200, maxDelayMs: 5000 }).wait());
    const never = new QuietTime({ quietMs: 0, maxDelayMs: 5000 });
    never.activity();
    const zero = timed(never.wait());
    await tick(0);
    expect(fresh.ms).toBe(0);
    expect(zero.ms).toBe(0);
  });

  it('holds work until executions pause for quietMs', async () => {
    const q = new QuietTime({ quietMs: 150, maxDelayMs: 5000 });
    q.activity();
    const waited = timed(q.wait());
    // Activity every 50 ms keeps the work waiting...
    for (let i = 0; i < 6; i++) {
      await tick(50);
      expect(waited.ms).toBeNull();
      q.activity();
    }
    // ...and it runs quietMs after the last one (at 300 ms).
    await tick(149);
    expect(waited.ms).toBeNull();
    await tick(1);
    expect(waited.ms).toBe(300 + 150);
  });

  it('never holds work longer than maxDelayMs after it was queued', async () => {
    const q = new QuietTime({ quietMs: 100, maxDelayMs: 250 });
    const busy = setInterval(() => q.activity(), 20);
    try {
      q.activity();
      const waited = timed(q.wait());
      await tick(249);
      expect(waited.ms).toBeNull();
      await tick(1);
      expect(waited.ms).toBe(250);
      // Work queued long ago goes at once.
      const old = timed(q.wait(performance.now() - 1000));
      await tick(0);
      expect(old.ms).toBe(0);
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
    await tick(50);
    expect(u.ms).toBeNull();
    urgent = true;
    q.activity();
    await tick(0);
    expect(u.ms).toBe(50);
    expect(other.ms).toBeNull();
    q.release();
    await tick(0);
    expect(other.ms).toBe(50);
  });
});
