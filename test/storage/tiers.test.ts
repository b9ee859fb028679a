import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BlobCorruptError, BlobStore, silentLogger, type BlobStoreOptions } from '../../src/storage/index.js';
import { blobKey } from '../../src/storage/s3-tier.js';
import { blobFile, prng, textLike } from './helpers.js';
import { tmpDir } from './tmp-dir.js';
import { TestS3, startBrokenS3 } from './s3-server.js';

let s3: TestS3;
const stores: BlobStore[] = [];
const fastRetry = { retryBaseMs: 50, retryMaxMs: 400, pollMs: 100 };

async function open(opts: Partial<BlobStoreOptions> & { prefix?: string } = {}) {
  const { prefix = `p${Math.random().toString(36).slice(2, 8)}/`, ...rest } = opts;
  const s = await BlobStore.open({ dataDir: tmpDir(), logger: silentLogger, s3: s3.tierConfig(prefix), replication: fastRetry, ...rest });
  stores.push(s);
  return s;
}

beforeAll(async () => {
  s3 = await TestS3.start();
});
afterEach(async () => {
  while (stores.length) await stores.pop()!.close();
  await s3.resume();
});
afterAll(async () => {
  await s3.destroy();
});

function objectBytes(store: BlobStore, id: string): Buffer {
  return fs.readFileSync(s3.objectFile(blobKey(store.s3!.config.prefix, id)));
}

describe('L2 replication to a real S3-compatible server (s3rver)', () => {
  it('replicates every blob byte-exactly (streamed bodies are not corrupted)', async () => {
    const s = await open();
    const big = textLike(6 * 1024 * 1024, 3);
    const small = Buffer.from('small blob');
    const rb = await s.put(big);
    const rs = await s.put(small);
    expect(rb.chunks).toBeGreaterThan(2);
    await s.flushReplication(30_000);
    const st = s.stats();
    expect(st.pending_replication).toBe(0);
    expect(st.l2_bytes).toBe(st.stored_bytes);
    for (const id of [rb.id, rs.id, ...s.list({ all: true }).map((e) => e.id)]) {
      expect((await s.stat(id)).inL2).toBe(true);
      expect(objectBytes(s, id).equals(fs.readFileSync(blobFile(s.dataDir, id)))).toBe(true);
    }
  });

  it('evicts only replicated blobs, LRU, and reads through from L2 with verification', async () => {
    const s = await open({ l1MaxBytes: 1024 * 1024, replication: { ...fastRetry, autoStart: false } });
    const data = prng(6 * 1024 * 1024, 21);
    const { id } = await s.put(data);
    await new Promise((r) => setTimeout(r, 100));
    // Nothing is in L2 yet: nothing may be evicted, whatever the cap.
    expect(s.stats().l1_bytes).toBeGreaterThan(6 * 1024 * 1024);
    s.startReplication();
    await s.flushReplication(30_000);
    await new Promise((r) => setTimeout(r, 50));
    const after = s.stats();
    expect(after.l1_bytes).toBeLessThanOrEqual(1024 * 1024);
    expect(after.l2_bytes).toBe(after.stored_bytes);
    // Read-through: every chunk comes back from L2, verified, and lands in L1 again.
    expect((await s.get(id)).equals(data)).toBe(true);
    // Corrupt an L2 object of a chunk that is not in L1: the read fails naming the blob, no wrong data.
    const evicted = s.list({ all: true }).find((e) => e.kind === 'blob' && !fs.existsSync(blobFile(s.dataDir, e.id)));
    if (evicted) {
      const f = s3.objectFile(blobKey(s.s3!.config.prefix, evicted.id));
      const b = fs.readFileSync(f);
      b[b.length - 7]! ^= 0xff;
      fs.writeFileSync(f, b);
      const err = await s.get(id).catch((e) => e);
      expect(err).toBeInstanceOf(BlobCorruptError);
      expect(err.message).toContain(id);
      expect(err.message).toMatch(/L2/);
    }
  });

  it('heals a corrupt L1 file from L2', async () => {
    const s = await open();
    const data = textLike(400_000, 8);
    const { id } = await s.put(data, { chunked: false });
    await s.flushReplication(30_000);
    const f = blobFile(s.dataDir, id);
    const b = fs.readFileSync(f);
    b[100]! ^= 1;
    fs.writeFileSync(f, b);
    expect((await s.get(id)).equals(data)).toBe(true);
    expect((await s.verify()).problems).toEqual([]);
  });

  it('server stopped mid-replication: nothing lost, queue drains when it is back', async () => {
    const s = await open({ l1MaxBytes: 512 * 1024 });
    const blobs = [prng(3 * 1024 * 1024, 31), textLike(3 * 1024 * 1024, 32), prng(200_000, 33)];
    const puts = blobs.map((b) => s.put(b));
    // Stop while uploads are in flight.
    await new Promise((r) => setTimeout(r, 5));
    await s3.stop();
    const ids = (await Promise.all(puts)).map((r) => r.id);
    await new Promise((r) => setTimeout(r, 600));
    const down = s.stats();
    expect(down.pending_replication).toBeGreaterThan(0);
    expect(down.failing_replication).toBeGreaterThan(0);
    expect(down.last_replication_error).toMatch(/failed/);
    // Everything still readable from L1; unreplicated blobs were not evicted despite the cap.
    for (let i = 0; i < ids.length; i++) expect((await s.get(ids[i]!)).equals(blobs[i]!)).toBe(true);
    expect((await s.verify()).problems).toEqual([]);
    await s3.resume();
    await s.flushReplication(30_000);
    const up = s.stats();
    expect(up.pending_replication).toBe(0);
    expect(up.l2_bytes).toBe(up.stored_bytes);
    for (const e of s.list({ all: true })) expect(objectBytes(s, e.id).length).toBeGreaterThan(0);
    for (let i = 0; i < ids.length; i++) expect((await s.get(ids[i]!)).equals(blobs[i]!)).toBe(true);
  });

  it('a restart loses no pending upload (queue is in SQLite)', async () => {
    await s3.stop();
    const dataDir = tmpDir();
    const prefix = 'restart/';
    const a = await BlobStore.open({ dataDir, logger: silentLogger, s3: s3.tierConfig(prefix, 1000), replication: fastRetry });
    const data = textLike(4 * 1024 * 1024, 41);
    const { id } = await a.put(data);
    const pending = a.stats().pending_replication;
    expect(pending).toBeGreaterThan(2);
    await a.close();
    await s3.resume();
    const b = await open({ dataDir, prefix });
    expect(b.stats().pending_replication).toBe(pending);
    await b.flushReplication(30_000);
    expect(b.stats().pending_replication).toBe(0);
    expect((await b.stat(id)).inL2).toBe(true);
  });

  it('blobs stored before L2 was configured are replicated when it is', async () => {
    const dataDir = tmpDir();
    const a = await BlobStore.open({ dataDir, logger: silentLogger });
    const { id } = await a.put(prng(100_000, 51));
    await a.close();
    const b = await open({ dataDir });
    await b.flushReplication(30_000);
    expect((await b.stat(id)).inL2).toBe(true);
  });
});

describe('L2 faults: errors and a hung server', () => {
  for (const [name, status, delay] of [
    ['returns 500 errors', 500, 0],
    ['returns 503 slowly', 503, 300],
    ['hangs (timeouts)', 0, Infinity],
  ] as const) {
    it(`server ${name}: retries with backoff, keeps blobs in L1, recovers on a good server`, async () => {
      const broken = await startBrokenS3(status, delay);
      const dataDir = tmpDir();
      const cfg = { ...s3.tierConfig('faults/', 300), endpoint: broken.endpoint };
      const a = await BlobStore.open({ dataDir, logger: silentLogger, s3: cfg, l1MaxBytes: 1024, replication: fastRetry });
      const data = prng(300_000, 61);
      const { id } = await a.put(data);
      await new Promise((r) => setTimeout(r, 1500));
      const st = a.stats();
      expect(st.pending_replication).toBe(1);
      expect(st.last_replication_error).toBeTruthy();
      expect(broken.requests()).toBeGreaterThan(1); // retried
      expect(broken.requests()).toBeLessThan(40); // with backoff, not a hot loop
      await expect(a.flushReplication(200)).rejects.toThrow(/did not drain.*1 item/);
      expect((await a.get(id)).equals(data)).toBe(true);
      expect(fs.existsSync(blobFile(dataDir, id))).toBe(true);
      await a.close();
      await broken.close();
      const b = await open({ dataDir, prefix: 'faults/' });
      await b.flushReplication(30_000);
      expect((await b.stat(id)).inL2).toBe(true);
    });
  }
});

describe('faas storage replicate (CLI, in-process) with L2 from the environment', () => {
  it('put leaves uploads queued; replicate drains them', async () => {
    const { command } = await import('../../src/cli/commands/storage.js');
    const dataDir = tmpDir();
    const file = path.join(tmpDir(), 'input');
    fs.writeFileSync(file, textLike(3 * 1024 * 1024, 99));
    const saved = { ...process.env };
    Object.assign(process.env, {
      FAAS_OBJECT_STORE_URL: `s3://${s3.bucket}/cli-env`,
      FAAS_S3_ENDPOINT: s3.endpoint,
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_REGION: 'us-east-1',
    });
    const log = console.log;
    const err = process.stderr.write.bind(process.stderr);
    const out: string[] = [];
    console.log = (...a: unknown[]) => void out.push(a.join(' '));
    try {
      expect(await command.run(['put', file, '--data-dir', dataDir])).toBe(0);
      expect(await command.run(['stats', '--json', '--data-dir', dataDir])).toBe(0);
      expect(JSON.parse(out.at(-1)!).pending_replication).toBeGreaterThan(2);
      expect(await command.run(['replicate', '--timeout', '60s', '--data-dir', dataDir])).toBe(0);
      expect(await command.run(['stats', '--json', '--data-dir', dataDir])).toBe(0);
      const st = JSON.parse(out.at(-1)!);
      expect(st.pending_replication).toBe(0);
      expect(st.l2_bytes).toBe(st.stored_bytes);
    } finally {
      console.log = log;
      process.stderr.write = err;
      process.env = saved;
    }
  });
});

describe('verify --l2', () => {
  it('finds a corrupt L2 copy and, with repair, re-uploads it from L1', async () => {
    const s = await BlobStore.open({ dataDir: tmpDir(), logger: silentLogger, s3: s3.tierConfig('verify-l2/'), replication: fastRetry });
    stores.push(s);
    const data = prng(400_000, 88);
    const { id } = await s.put(data);
    await s.flushReplication(30_000);
    expect((await s.verify({ l2: true })).problems).toEqual([]);
    const f = s3.objectFile(blobKey('verify-l2/', id));
    const b = fs.readFileSync(f);
    b[1000]! ^= 0x10;
    fs.writeFileSync(f, b);
    expect((await s.verify()).problems).toEqual([]); // L1 only: fine
    const rep = await s.verify({ l2: true, repair: true });
    expect(rep.problems).toHaveLength(1);
    expect(rep.problems[0]).toMatchObject({ id, problem: 'corrupt' });
    expect(rep.problems[0]!.repaired).toMatch(/re-queued/);
    await s.flushReplication(30_000);
    expect((await s.verify({ l2: true })).problems).toEqual([]);
  });
});
