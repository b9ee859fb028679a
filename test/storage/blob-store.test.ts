import fs from 'node:fs';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BlobCorruptError,
  BlobInUseError,
  BlobNotFoundError,
  BlobStore,
  InvalidBlobIdError,
  silentLogger,
} from '../../src/storage/index.js';
import { blobFile, prng, sha256, textLike } from './helpers.js';
import { tmpDir } from './tmp-dir.js';

const stores: BlobStore[] = [];
async function open(dataDir = tmpDir(), extra: Partial<Parameters<typeof BlobStore.open>[0]> = {}) {
  const s = await BlobStore.open({ dataDir, logger: silentLogger, ...extra });
  stores.push(s);
  return s;
}
afterEach(async () => {
  while (stores.length) await stores.pop()!.close();
});

describe('BlobStore basics', () => {
  it('put/get/has/stat/list/delete a small buffer; id is the SHA-256', async () => {
    const s = await open();
    const data = Buffer.from('hello, blob store\n');
    const r = await s.put(data);
    expect(r.id).toBe(sha256(data));
    expect(r.codec).toBe('none'); // too small to compress
    expect((await s.get(r.id)).equals(data)).toBe(true);
    expect(await s.has(r.id)).toBe(true);
    const st = await s.stat(r.id);
    expect(st.size).toBe(data.length);
    expect(st.kind).toBe('blob');
    expect(st.inL1).toBe(true);
    expect(s.list().map((e) => e.id)).toEqual([r.id]);
    expect(fs.existsSync(blobFile(s.dataDir, r.id))).toBe(true);
    const again = await s.put(data);
    expect(again.deduplicated).toBe(true);
    expect(again.newBytes).toBe(0);
    expect(await s.delete(r.id)).toBe(true);
    expect(await s.has(r.id)).toBe(false);
    await expect(s.get(r.id)).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(s.stat(r.id)).rejects.toBeInstanceOf(BlobNotFoundError);
  });

  it('rejects ids that are not 64 lowercase hex', async () => {
    const s = await open();
    for (const bad of ['', 'abc', 'A'.repeat(64), '../../etc/passwd', 'g'.repeat(64), 'a'.repeat(65)]) {
      await expect(s.get(bad)).rejects.toBeInstanceOf(InvalidBlobIdError);
      await expect(s.has(bad)).rejects.toBeInstanceOf(InvalidBlobIdError);
    }
  });

  it('empty content', async () => {
    const s = await open();
    const r = await s.put(Buffer.alloc(0));
    expect(r.id).toBe(sha256(Buffer.alloc(0)));
    expect((await s.get(r.id)).length).toBe(0);
  });

  it('chooses codecs by content and records them', async () => {
    const s = await open();
    const text = textLike(200_000);
    const rnd = prng(200_000, 7);
    const rt = await s.put(text);
    const rr = await s.put(rnd);
    expect(rt.codec).toBe('zstd');
    expect(rt.storedBytes).toBeLessThan(text.length / 2);
    expect(rr.codec).toBe('none');
    expect(rr.storedBytes).toBe(rnd.length + 24);
    const rf = await s.put(textLike(150_000, 3), { codec: 'fast' });
    expect(rf.codec).toBe('lz4');
    const forced = await s.put(textLike(90_000, 4), { codec: 'none' });
    expect(forced.codec).toBe('none');
    for (const [r, d] of [
      [rt, text],
      [rr, rnd],
    ] as const) {
      expect((await s.get(r.id)).equals(d)).toBe(true);
      expect((await s.stat(r.id)).codec).toBe(r.codec);
    }
    expect((await s.get(rf.id)).equals(textLike(150_000, 3))).toBe(true);
    // The codec is in the file header too: byte 4 (1 = zstd, 2 = lz4).
    expect(fs.readFileSync(blobFile(s.dataDir, rt.id))[4]).toBe(1);
    expect(fs.readFileSync(blobFile(s.dataDir, rf.id))[4]).toBe(2);
  });

  it('stores incompressible chunks raw even after a long run of compressible ones (sampling is skipped then)', async () => {
    const s = await open();
    const text = textLike(12 * 1024 * 1024, 5);
    const rnd = prng(4 * 1024 * 1024, 9);
    const r = await s.put(Buffer.concat([text, rnd]));
    expect((await s.get(r.id)).equals(Buffer.concat([text, rnd]))).toBe(true);
    const chunks = await Promise.all(s.list({ all: true }).filter((e) => e.kind === 'blob').map((e) => s.stat(e.id)));
    const raw = chunks.filter((c) => c.codec === 'none');
    const zstd = chunks.filter((c) => c.codec === 'zstd');
    // The random tail is stored as it is (header only), the text compressed; no chunk is stored larger than it is.
    expect(raw.reduce((a, c) => a + c.size, 0)).toBeGreaterThan(3.5 * 1024 * 1024);
    expect(zstd.reduce((a, c) => a + c.size, 0)).toBeGreaterThan(11 * 1024 * 1024);
    for (const c of chunks) expect(c.storedBytes).toBeLessThanOrEqual(c.size + 24);
  });

  it('put from a stream equals put from a buffer (small and chunked)', async () => {
    const s = await open();
    for (const size of [1000, 3 * 1024 * 1024 + 17]) {
      const data = prng(size, size);
      const pieces = Array.from({ length: Math.ceil(size / 65_536) }, (_, i) => data.subarray(i * 65_536, (i + 1) * 65_536));
      const r = await s.put(Readable.from(pieces));
      expect(r.id).toBe(sha256(data));
      expect((await s.get(r.id)).equals(data)).toBe(true);
      const chunks: Buffer[] = [];
      for await (const c of s.getStream(r.id)) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
    }
  });

  it('a stream that fails mid-put stores no object and leaves no pins', async () => {
    const s = await open();
    const data = prng(3 * 1024 * 1024, 44);
    async function* failing() {
      yield data.subarray(0, 1024 * 1024);
      yield data.subarray(1024 * 1024, 2500 * 1024);
      throw new Error('client went away');
    }
    await expect(s.put(Readable.from(failing()))).rejects.toThrow(/client went away/);
    expect(s.stats().objects).toBe(0);
    expect(s.stats().refs).toBe(0);
    expect((await s.gc({ graceMs: 0 })).kept).toBe(0);
  });

  it('detects a flipped byte and a truncated file, naming the id', async () => {
    const s = await open();
    const data = textLike(300_000, 9);
    const { id } = await s.put(data, { chunked: false });
    const file = blobFile(s.dataDir, id);
    const orig = fs.readFileSync(file);
    const flipped = Buffer.from(orig);
    flipped[orig.length - 100]! ^= 0x01;
    fs.writeFileSync(file, flipped);
    const err = await s.get(id).catch((e) => e);
    expect(err).toBeInstanceOf(BlobCorruptError);
    expect(String(err.message)).toContain(id);
    const rep = await s.verify();
    expect(rep.problems.map((p) => p.id)).toEqual([id]);
    fs.writeFileSync(file, orig.subarray(0, orig.length - 1000));
    await expect(s.get(id)).rejects.toBeInstanceOf(BlobCorruptError);
    fs.writeFileSync(file, orig.subarray(0, 10));
    await expect(s.get(id)).rejects.toBeInstanceOf(BlobCorruptError);
    // An uncompressed blob with a flipped byte also fails its hash.
    const raw = prng(100_000, 2);
    const r2 = await s.put(raw);
    const f2 = blobFile(s.dataDir, r2.id);
    const b2 = fs.readFileSync(f2);
    b2[5000]! ^= 0x80;
    fs.writeFileSync(f2, b2);
    await expect(s.get(r2.id)).rejects.toThrow(/corrupt/);
    // Putting the same content again does not help while the file is present but corrupt; verify --repair
    // quarantines it and the next put restores it.
    const rep2 = await s.verify({ repair: true });
    expect(rep2.problems.length).toBe(2);
    expect(rep2.problems.every((p) => p.repaired)).toBe(true);
    await s.put(raw);
    expect((await s.get(r2.id)).equals(raw)).toBe(true);
  });

  it('refs block delete; removeRefs frees', async () => {
    const s = await open();
    const { id } = await s.put(Buffer.from('referenced'));
    s.addRef('snapshot:1', id);
    s.addRef('cache:x', id);
    expect(s.refs(id)).toEqual(['cache:x', 'snapshot:1']);
    await expect(s.delete(id)).rejects.toBeInstanceOf(BlobInUseError);
    expect(s.removeRef('cache:x', id)).toBe(true);
    expect(s.removeRefs('snapshot:1')).toBe(1);
    expect(await s.delete(id)).toBe(true);
    expect(() => s.addRef('x', id)).toThrow(BlobNotFoundError);
  });

  it('concurrent puts and gets of one id', async () => {
    const s = await open();
    const data = textLike(2_500_000, 5);
    const id = sha256(data);
    const results = await Promise.all([
      ...Array.from({ length: 6 }, () => s.put(data)),
      ...Array.from({ length: 6 }, async () => {
        // Gets racing the puts either miss cleanly or return the full, verified content.
        try {
          const got = await s.get(id);
          return got.equals(data);
        } catch (err) {
          return err instanceof BlobNotFoundError || err instanceof BlobCorruptError ? 'miss' : err;
        }
      }),
    ]);
    for (const r of results.slice(0, 6)) expect((r as { id: string }).id).toBe(id);
    for (const r of results.slice(6)) expect([true, 'miss']).toContain(r);
    expect((await s.get(id)).equals(data)).toBe(true);
    expect((await s.verify()).problems).toEqual([]);
    expect(fs.readdirSync(`${s.dataDir}/blobs/tmp`)).toEqual([]);
  });

  it('a second store on the same data dir sees the blobs (restart)', async () => {
    const dir = tmpDir();
    const a = await open(dir);
    const data = prng(5_000_000, 11);
    const { id } = await a.put(data);
    await a.close();
    const b = await open(dir);
    expect((await b.get(id)).equals(data)).toBe(true);
  });

  it('survives its directories being removed under it (and a data dir recreated in the same process)', async () => {
    const dir = tmpDir();
    const a = await open(dir, { workers: 0 });
    const data = textLike(40_000, 21);
    const { id } = await a.put(data);
    fs.rmSync(`${dir}/blobs/${id.slice(0, 2)}`, { recursive: true });
    await a.put(data); // the row says stored but the file is gone: rewritten
    expect((await a.get(id)).equals(data)).toBe(true);
    await a.close();
    fs.rmSync(dir, { recursive: true });
    const b = await open(dir, { workers: 0 });
    await b.put(data);
    expect((await b.get(id)).equals(data)).toBe(true);
  });

  it('works without worker threads', async () => {
    const s = await open(tmpDir(), { workers: 0 });
    const data = textLike(3_000_000, 12);
    const { id } = await s.put(data);
    expect((await s.get(id)).equals(data)).toBe(true);
  });
});

describe('every single flipped byte is detected', () => {
  it('in data blobs (none, zstd, lz4) and in a manifest, header included', async () => {
    const s = await BlobStore.open({ dataDir: tmpDir(), logger: silentLogger, workers: 0 });
    stores.push(s);
    const cases = [
      await s.put(prng(3000, 1), { codec: 'none' }),
      await s.put(textLike(3000, 2), { codec: 'zstd' }),
      await s.put(textLike(3000, 3), { codec: 'lz4' }),
      await s.put(prng(2_500_000, 4)),
    ];
    for (const r of cases) {
      const file = blobFile(s.dataDir, r.id);
      const orig = fs.readFileSync(file);
      // Every header byte, and a spread of payload bytes (all of them for small files).
      const positions = [...Array(24).keys(), ...Array.from({ length: 200 }, (_, i) => 24 + Math.floor(((orig.length - 25) * i) / 199))];
      for (const pos of positions) {
        for (const bit of [0x01, 0x80]) {
          const b = Buffer.from(orig);
          b[pos]! ^= bit;
          fs.writeFileSync(file, b);
          const err = await s.get(r.id).then(
            () => null,
            (e) => e,
          );
          expect(err, `${r.codec} byte ${pos} bit ${bit}`).toBeInstanceOf(BlobCorruptError);
        }
      }
      fs.writeFileSync(file, orig);
      expect((await s.verify()).problems).toEqual([]);
    }
  });
});
