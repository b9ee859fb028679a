import { describe, expect, it } from 'vitest';
import { collectGarbage } from '../../src/platform/heap-tidy.js';

describe('collectGarbage', () => {
  it('frees what nothing refers to, without --expose-gc', async () => {
    expect(typeof (globalThis as { gc?: unknown }).gc).toBe('undefined');
    const ref = new WeakRef(Array.from({ length: 100_000 }, (_, i) => ({ i, s: `item ${i}` })));
    // A WeakRef's target stays alive until the end of the job that made (or dereferenced) it.
    await new Promise((r) => setTimeout(r, 0));
    expect(ref.deref()).toBeDefined();
    await new Promise((r) => setTimeout(r, 0));
    expect(collectGarbage()).toBe(true);
    expect(ref.deref()).toBeUndefined();
  });
});
