import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { BlobCorruptError, BlobNotFoundError, BlobStore, StreamChunker, chunkLengths, silentLogger } from '../../src/storage/index.js';
import { chunkBoundaries } from '../../src/storage/chunker.js';
import { blobFile, prng, sha256, textLike } from './helpers.js';
import { tmpDir } from './tmp-dir.js';

const MiB = 1024 * 1024;
const stores: BlobStore[] = [];
async function open(dataDir = tmpDir()) {
  const s = await BlobStore.open({ dataDir, logger: silentLogger });
  stores.push(s);
  return s;
}
afterEach(async () => {
  while (stores.length) await stores.pop()!.close();
});

describe('FastCDC chunker', () => {
  it('streaming boundaries equal whole-buffer boundaries, sizes within bounds', () => {
    const data = prng(9 * MiB + 123, 5);
    const whole = chunkLengths(data);
    // Small pieces (many joins), pieces larger than what is gathered before a join, and one byte at a time at first.
    for (const piece of [100_003, 5 * MiB + 7]) {
      const c = new StreamChunker();
      const got: number[] = [];
      const chunks = [...c.push(data.subarray(0, 1))];
      for (let off = 1; off < data.length; off += piece) chunks.push(...c.push(data.subarray(off, off + piece)));
      chunks.push(...c.end());
      // Each chunk comes as views of the pieces it spans; together they are the input, in order.
      expect(chunks.map((parts) => parts.reduce((n, p) => n + p.length, 0))).toEqual(whole);
      expect(Buffer.concat(chunks.flat()).equals(data)).toBe(true);
    }
    expect(whole.reduce((a, b) => a + b, 0)).toBe(data.length);
    for (const len of whole.slice(0, -1)) {
      expect(len).toBeGreaterThanOrEqual(16 * 1024);
      expect(len).toBeLessThanOrEqual(MiB);
    }
    const avg = data.length / whole.length;
    expect(avg).toBeGreaterThan(150 * 1024);
    expect(avg).toBeLessThan(450 * 1024);
  });

  it('boundaries never change (every chunk id of every stored blob depends on them)', () => {
    // Pinned when the chunker went to normalization level 1 and a 16 KiB minimum; any change here breaks dedup
    // against existing stores.
    expect(chunkLengths(prng(4 * MiB, 7))).toEqual([
      305131, 268310, 416578, 44319, 50954, 144456, 267786, 408654, 288005, 311522, 272747, 1048576, 367266,
    ]);
    expect(chunkLengths(textLike(4 * MiB, 3))).toEqual([
      619343, 416965, 461541, 288802, 351910, 510996, 82506, 255636, 274434, 231033, 79472, 190860, 32855, 397951,
    ]);
    expect(chunkLengths(prng(64 * 1024, 5), { min: 1024, avg: 4096, max: 16384 })).toEqual([
      4565, 2819, 2378, 3811, 5143, 5715, 2857, 6324, 3361, 5414, 4157, 1295, 1606, 4225, 2907, 5282, 3677,
    ]);
    const many = chunkLengths(prng(64 * MiB, 1));
    expect(many.length).toBe(234);
    expect(sha256(Buffer.from(JSON.stringify(many)))).toBe('fab086191f748d0ced974bc60d8c0f4962a4ea56310db3b91d24c0aaa0aaeca9');
  });

  it('interleaved splits (two puts at once share the scan memory) give the same boundaries', () => {
    const a = prng(12 * MiB, 21);
    const b = textLike(12 * MiB, 22);
    const ia = chunkBoundaries(a);
    const ib = chunkBoundaries(b);
    const got: [number[], number[]] = [[], []];
    for (;;) {
      const x = ia.next();
      const y = ib.next();
      if (!x.done) got[0].push(x.value);
      if (!y.done) got[1].push(y.value);
      if (x.done && y.done) break;
    }
    expect(got).toEqual([chunkLengths(a), chunkLengths(b)]);
  });

  it('an insertion only changes the chunks around it', () => {
    const a = prng(8 * MiB, 6);
    const b = Buffer.concat([a.subarray(0, 3 * MiB), Buffer.from('inserted!'), a.subarray(3 * MiB)]);
    const ids = (buf: Buffer) => {
      const out = new Set<string>();
      let off = 0;
      for (const len of chunkLengths(buf)) {
        out.add(sha256(buf.subarray(off, off + len)));
        off += len;
      }
      return out;
    };
    const A = ids(a);
    const B = ids(b);
    const changed = [...B].filter((x) => !A.has(x)).length;
    expect(changed).toBeLessThanOrEqual(3);
  });
});

describe('deduplication across snapshots', () => {
  it('a 1 MiB change inside a 64 MiB file adds < 4 MiB; re-put adds nothing; both read back', async () => {
    const s = await open();
    const a = prng(64 * MiB, 1);
    const b = Buffer.from(a);
    prng(MiB, 2).copy(b, 30 * MiB + 12345);
    const ra = await s.put(a);
    expect(ra.id).toBe(sha256(a));
    expect(ra.chunks).toBeGreaterThan(100);
    const before = s.stats().stored_bytes;
    const rb = await s.put(b);
    const grown = s.stats().stored_bytes - before;
    expect(grown).toBeLessThan(4 * MiB);
    expect(rb.newBytes).toBe(grown);
    const re = await s.put(a);
    expect(re.newBytes).toBe(0);
    expect(re.deduplicated).toBe(true);
    expect((await s.get(ra.id)).equals(a)).toBe(true);
    expect((await s.get(rb.id)).equals(b)).toBe(true);
    const st = s.stats();
    expect(st.dedup_ratio).toBeGreaterThan(1.9);
    expect(st.objects).toBe(2);
    expect(st.manifests).toBe(2);
  });

  it('a modified re-snapshot of compressible data shares chunks; stats report ratios', async () => {
    const s = await open();
    const tree = textLike(20 * MiB, 3);
    await s.put(tree);
    const modified = Buffer.concat([tree.subarray(0, 7 * MiB), textLike(200_000, 4), tree.subarray(7 * MiB + 100_000)]);
    const r = await s.put(modified);
    expect(r.newChunks).toBeLessThanOrEqual(4);
    const st = s.stats();
    expect(st.compression_ratio).toBeGreaterThan(2);
    expect(st.dedup_ratio).toBeGreaterThan(1.8);
  });

  it('a chunk file the database does not know is rewritten and recorded', async () => {
    const s = await open();
    const data = textLike(6 * MiB, 31);
    const { id } = await s.put(data, { ref: 'test' });
    const chunk = s.list({ all: true }).find((e) => e.kind === 'blob')!;
    // As after losing the database: the file is there, its row is not.
    s.db.prepare('DELETE FROM storage_blobs WHERE id = ?').run(chunk.id);
    const again = await s.put(data);
    expect(again.id).toBe(id);
    expect(again.newChunks).toBe(1);
    expect(s.list({ all: true }).map((e) => e.id)).toContain(chunk.id);
    expect((await s.get(id)).equals(data)).toBe(true);
    expect((await s.verify()).problems).toEqual([]);
    expect(fs.readdirSync(`${s.blobsDir}/tmp`)).toEqual([]);
  });

  it('a missing chunk is an error naming the blob, for get, getStream and verify', async () => {
    const s = await open();
    const data = prng(5 * MiB, 9);
    const { id } = await s.put(data);
    const chunk = s.list({ all: true }).find((e) => e.kind === 'blob')!;
    fs.unlinkSync(blobFile(s.dataDir, chunk.id));
    const err = await s.get(id).catch((e) => e);
    expect(err).toBeInstanceOf(BlobCorruptError);
    expect(err.message).toContain(id);
    expect(err.message).toMatch(/missing/);
    const stream = s.getStream(id);
    await expect(
      (async () => {
        for await (const _ of stream) void _;
      })(),
    ).rejects.toBeInstanceOf(BlobCorruptError);
    const rep = await s.verify();
    expect(rep.problems.map((p) => p.id)).toContain(chunk.id);
    // Putting the content again restores the chunk.
    await s.put(data);
    expect((await s.get(id)).equals(data)).toBe(true);
    expect((await s.verify()).problems).toEqual([]);
  });
});

describe('garbage collection', () => {
  it('removes only unreferenced blobs older than the grace period; shared chunks survive', async () => {
    const s = await open();
    const base = prng(6 * MiB, 10);
    const a = await s.put(Buffer.from('kept by a reference'));
    const b = await s.put(Buffer.from('garbage'));
    const c = await s.put(base);
    const dData = Buffer.concat([base.subarray(0, 3 * MiB), prng(MiB, 11), base.subarray(4 * MiB)]);
    const d = await s.put(dData);
    s.addRef('snapshot:1', a.id);
    s.addRef('snapshot:1', c.id);
    expect((await s.gc({ graceMs: 60_000 })).removed).toBe(0);
    const dry = await s.gc({ graceMs: 0, dryRun: true });
    expect(dry.removed).toBe(2); // b and d's manifest (its chunks only after the manifest goes)
    const rep = await s.gc({ graceMs: 0 });
    expect(rep.removed).toBeGreaterThan(2);
    expect(await s.has(b.id)).toBe(false);
    expect(await s.has(d.id)).toBe(false);
    expect((await s.get(a.id)).toString()).toBe('kept by a reference');
    expect((await s.get(c.id)).equals(base)).toBe(true);
    expect((await s.verify()).problems).toEqual([]);
    // Dropping the last reference makes them garbage too.
    s.removeRefs('snapshot:1');
    await s.gc({ graceMs: 0 });
    expect(s.stats().blobs).toBe(0);
    const dirs = fs.readdirSync(s.blobsDir).filter((x) => /^[0-9a-f]{2}$/.test(x));
    expect(dirs.flatMap((x) => fs.readdirSync(`${s.blobsDir}/${x}`))).toEqual([]);
  });

  it('is safe against concurrent puts: an acknowledged put+ref is never lost', async () => {
    const s = await open();
    const contents = Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? prng(1_500_000, 100 + (i % 5)) : textLike(50_000 + i, i % 7)));
    const kept: { id: string; data: Buffer }[] = [];
    let refused = 0;
    let stop = false;
    const gcLoop = (async () => {
      while (!stop) {
        await s.gc({ graceMs: 0 });
        await new Promise((r) => setImmediate(r));
      }
    })();
    for (let round = 0; round < 3; round++) {
      await Promise.all(
        contents.map(async (data, i) => {
          if (i % 2 === 0) {
            // put with { ref }: the reference is taken atomically with the store, so gc (even with grace 0) cannot win.
            const r = await s.put(data, { ref: `owner:${round}:${i}` });
            kept.push({ id: r.id, data });
            return;
          }
          const r = await s.put(data);
          try {
            s.addRef(`owner:${round}:${i}`, r.id);
            kept.push({ id: r.id, data });
          } catch (err) {
            // gc with grace 0 may win the race between put and a separate addRef: a clean error, never a dangling ref.
            expect(err).toBeInstanceOf(BlobNotFoundError);
            refused++;
          }
        }),
      );
    }
    stop = true;
    await gcLoop;
    await s.gc({ graceMs: 0 });
    for (const k of kept) expect((await s.get(k.id)).equals(k.data)).toBe(true);
    expect((await s.verify()).problems).toEqual([]);
    expect(kept.length + refused).toBe(90);
    expect(kept.length).toBeGreaterThanOrEqual(45);
  });

  it('two stores on one data dir (two processes): puts with refs in one, gc --grace 0 in the other', async () => {
    const dir = tmpDir();
    const a = await open(dir);
    const b = await open(dir);
    const datas = Array.from({ length: 12 }, (_, i) => (i % 2 ? prng(1_300_000, 500 + i) : textLike(90_000, 600 + i)));
    let stop = false;
    const gcLoop = (async () => {
      while (!stop) {
        await b.gc({ graceMs: 0 });
        await new Promise((r) => setTimeout(r, 1));
      }
    })();
    const ids: string[] = [];
    for (let round = 0; round < 2; round++) {
      for (const [i, d] of datas.entries()) ids[i] = (await a.put(d, { ref: `snap:${i}` })).id;
    }
    stop = true;
    await gcLoop;
    for (const [i, d] of datas.entries()) {
      expect((await a.get(ids[i]!)).equals(d)).toBe(true);
      expect((await b.get(ids[i]!)).equals(d)).toBe(true);
    }
    expect((await b.verify()).problems).toEqual([]);
  });

  it('gc of thousands of blobs lets the event loop turn (a gateway runs it), and stops between blobs when aborted', async () => {
    const s = await open();
    const n = 3000;
    for (let i = 0; i < n; i += 200) {
      await Promise.all(Array.from({ length: 200 }, (_, j) => s.put(Buffer.from(`blob ${i + j} `.padEnd(700, 'x')), { chunked: false })));
    }
    await new Promise((r) => setTimeout(r, 5)); // grace 0 keeps blobs put in the same millisecond
    // The longest stretch the event loop did not turn while gc ran (a removal costs ~0.1 ms: ~0.4 s in all here).
    let longest = 0;
    let last = performance.now();
    let ticks = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
      ticks++;
    }, 1);
    last = performance.now();
    const t0 = performance.now();
    const rep = await s.gc({ graceMs: 0 });
    const took = performance.now() - t0;
    longest = Math.max(longest, performance.now() - last);
    clearInterval(timer);
    expect(rep.removed).toBe(n);
    expect(ticks).toBeGreaterThan(0);
    expect(longest).toBeLessThan(Math.max(100, took / 3));

    // Aborted while it runs: it stops at the next blob, what it removed is gone, the rest waits for the next run.
    for (let i = 0; i < n; i += 200) {
      await Promise.all(Array.from({ length: 200 }, (_, j) => s.put(Buffer.from(`again ${i + j} `.padEnd(700, 'y')), { chunked: false })));
    }
    await new Promise((r) => setTimeout(r, 5));
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 1);
    const partial = await s.gc({ graceMs: 0, signal: stop.signal });
    expect(partial.removed).toBeLessThan(n);
    expect(partial.kept).toBe(n - partial.removed);
    expect((await s.gc({ graceMs: 0 })).removed).toBe(n - partial.removed);
    expect((await s.verify()).problems).toEqual([]);
  });

  it('with a grace period, unreferenced blobs put concurrently with gc all survive', async () => {
    const s = await open();
    const datas = Array.from({ length: 20 }, (_, i) => prng(200_000 + i, 300 + i));
    const results = await Promise.all([...datas.map((d) => s.put(d)), s.gc({ graceMs: 60_000 }), s.gc({ graceMs: 60_000 })]);
    for (let i = 0; i < datas.length; i++) expect((await s.get((results[i] as { id: string }).id)).equals(datas[i]!)).toBe(true);
  });
});
