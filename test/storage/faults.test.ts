import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BlobStore, StorageFullError, silentLogger } from '../../src/storage/index.js';
import { migrateStorage } from '../../src/storage/schema.js';
import { openDatabase } from '../../src/db/sqlite.js';
import { blobFile, prng, sha256 } from './helpers.js';
import { tmpDir } from './tmp-dir.js';

const stores: BlobStore[] = [];
afterEach(async () => {
  while (stores.length) await stores.pop()!.close();
});
async function open(dataDir: string) {
  const s = await BlobStore.open({ dataDir, logger: silentLogger });
  stores.push(s);
  return s;
}

describe('full disk (4 MiB tmpfs)', () => {
  const mountDir = tmpDir('faas-full-');
  let mounted = false;
  let reason = '';
  beforeAll(() => {
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mountDir], { stdio: 'pipe' });
      mounted = true;
    } catch (err) {
      reason = String((err as { stderr?: Buffer }).stderr ?? err).trim();
    }
  });
  afterAll(async () => {
    while (stores.length) await stores.pop()!.close();
    if (mounted) execFileSync('umount', ['-l', mountDir]);
    fs.rmSync(mountDir, { recursive: true, force: true });
  });

  it('a put that does not fit fails with StorageFullError; acknowledged blobs stay intact; space freed = puts work again', async (ctx) => {
    if (!mounted) {
      ctx.skip(`cannot mount a tmpfs here (${reason}); the full-disk test needs root`);
      return;
    }
    const dataDir = path.join(mountDir, 'data');
    const s = await open(dataDir);
    const acked: { id: string; data: Buffer }[] = [];
    let full: unknown = null;
    for (let i = 0; i < 100 && !full; i++) {
      // Alternate single blobs and chunked ones so both paths hit ENOSPC.
      const data = prng(i % 4 === 3 ? 1_200_000 : 300_000, 1000 + i);
      try {
        const r = await s.put(data, { ref: 'keep' });
        acked.push({ id: r.id, data });
      } catch (err) {
        full = err;
      }
    }
    expect(full).toBeInstanceOf(StorageFullError);
    expect((full as Error).message).toMatch(/no space left/);
    expect(acked.length).toBeGreaterThan(3);
    for (const a of acked) expect((await s.get(a.id)).equals(a.data)).toBe(true);
    expect((await s.verify()).problems).toEqual([]);
    expect(fs.readdirSync(path.join(dataDir, 'blobs', 'tmp'))).toEqual([]);
    // Free space: delete what we acknowledged last, then a put succeeds again.
    for (const a of acked.slice(-3)) await s.delete(a.id, { force: true });
    await s.gc({ graceMs: 0 });
    const again = prng(200_000, 5);
    const r = await s.put(again);
    expect((await s.get(r.id)).equals(again)).toBe(true);
    // A store reopened on the full disk sees the same blobs.
    await s.close();
    stores.length = 0;
    const s2 = await open(dataDir);
    for (const a of acked.slice(0, -3)) expect((await s2.get(a.id)).equals(a.data)).toBe(true);
  });
});

describe('crashes', () => {
  it('kill -9 while putting: every acknowledged blob is intact after restart', async () => {
    const dataDir = tmpDir();
    const viteNode = path.resolve('node_modules/.bin/vite-node');
    const child = spawn(viteNode, [path.resolve('test/storage/fixtures/crash-writer.ts'), dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acks: { id: string; seed: number; size: number }[] = [];
    let buf = '';
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`child produced ${acks.length} acks; stderr: ${stderr}`)), 45_000);
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const l of lines) {
          const [, id, seed, size] = l.split(' ');
          acks.push({ id: id!, seed: Number(seed), size: Number(size) });
        }
        if (acks.length >= 12) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code) => reject(new Error(`child exited early (${code}): ${stderr}`)));
    });
    // Kill at an arbitrary point (likely mid-put: between a write and its rename, or between rename and commit).
    await new Promise((r) => setTimeout(r, 37));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const s = await open(dataDir);
    for (const a of acks) {
      const data = prng(a.size, a.seed);
      expect(a.id).toBe(sha256(data));
      expect((await s.get(a.id)).equals(data)).toBe(true);
    }
    expect((await s.verify()).problems).toEqual([]);
    // The interrupted put can be repeated and completes.
    const next = acks.length + 1;
    const size = next % 3 === 0 ? 2_500_000 + next : 100_000 + next * 7;
    const r = await s.put(prng(size, next));
    expect((await s.get(r.id)).equals(prng(size, next))).toBe(true);
  }, 90_000);

  it('a crash between write and rename leaves only a temp file and a claim; neither is visible, both are cleaned', async () => {
    const dataDir = tmpDir();
    const data = prng(300_000, 77);
    const id = sha256(data);
    // What a writer killed before its rename leaves behind: a claim row (state WRITING) and a partial temp file.
    const db = openDatabase(dataDir);
    migrateStorage(db);
    const old = Date.now() - 2 * 60 * 60_000;
    db.prepare(
      `INSERT INTO storage_blobs (id, kind, state, size, stored_size, codec, in_l1, in_l2, created_at, last_put_at, last_access_at, state_since)
       VALUES (?, 0, 0, 0, 0, 'none', 0, 0, ?, ?, ?, ?)`,
    ).run(id, old, old, old, old);
    db.close();
    const tmp = path.join(dataDir, 'blobs', 'tmp', `${id.slice(0, 16)}.99999.1.dead.tmp`);
    fs.mkdirSync(path.dirname(tmp), { recursive: true });
    fs.writeFileSync(tmp, data.subarray(0, 1000));
    fs.utimesSync(tmp, new Date(old), new Date(old));
    const s = await open(dataDir);
    expect(fs.existsSync(tmp)).toBe(false); // stale temp files are removed on open
    expect(await s.has(id)).toBe(false);
    expect(fs.existsSync(blobFile(dataDir, id))).toBe(false);
    expect((await s.verify()).problems).toEqual([]);
    const gc = await s.gc({ graceMs: 0 });
    expect(gc.staleClaims).toBe(1);
    const r = await s.put(data);
    expect(r.id).toBe(id);
    expect((await s.get(id)).equals(data)).toBe(true);
  });
});
