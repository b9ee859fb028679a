// The references a SnapshotService keeps in the BlobStore, on a real store with a stand-in runtime: what a
// deleted snapshot leaves behind must be collectable, even when a restore from it was under way.
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/sqlite.js';
import { SnapshotService } from '../../src/platform/snapshots.js';
import type { Runtime } from '../../src/runtimes/runtime.js';
import { BlobStore } from '../../src/storage/index.js';
import { prng } from '../storage/helpers.js';
import { tmpDir } from '../storage/tmp-dir.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setUp() {
  const dir = tmpDir('faas-snapshot-refs-');
  const db = openDatabase(dir);
  const blobs = await BlobStore.open({ dataDir: dir, db, workers: 0 });
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }), () => db.close(), () => blobs.close());
  let letRestoreFinish!: () => void;
  const restoreGate = new Promise<void>((r) => (letRestoreFinish = r));
  let restoreReading!: () => void;
  const reading = new Promise<void>((r) => (restoreReading = r));
  const runtime = {
    async captureChanges<T>(_id: string, consume: (c: unknown) => Promise<T>): Promise<T> {
      return consume({ archive: Readable.from([prng(3 << 20, 7)]), deletions: [], image: 'img', imageId: 'sha256:abc', stats: { entries: 1, contentBytes: 3 << 20 } });
    },
    async applyChanges(_id: string, archive: NodeJS.ReadableStream): Promise<void> {
      restoreReading();
      for await (const _ of archive as AsyncIterable<Buffer>) {
        // read it all, as the engine would
      }
      await restoreGate;
    },
  } as unknown as Runtime;
  return { blobs, snapshots: new SnapshotService(db, blobs, runtime), letRestoreFinish, reading };
}

describe('snapshot references', () => {
  it('a restore that ends after its snapshot was deleted does not keep the deleted snapshot’s blobs', async () => {
    const { blobs, snapshots, letRestoreFinish, reading } = await setUp();
    const snap = await snapshots.capture('t1', 'sb-1');
    const restoring = snapshots.restore(snap, 'sb-2');
    await reading;
    await snapshots.delete('t1', snap.id);
    letRestoreFinish();
    await restoring;
    expect(blobs.refs(snap.blobId)).toEqual([]);
    const before = blobs.stats().stored_bytes;
    expect(before).toBeGreaterThan(3 << 20);
    await blobs.gc({ graceMs: 0 });
    expect(blobs.stats().stored_bytes).toBe(0);
  });

  it('a restore of a live snapshot keeps its references', async () => {
    const { blobs, snapshots, letRestoreFinish } = await setUp();
    const snap = await snapshots.capture('t1', 'sb-1');
    letRestoreFinish();
    await snapshots.restore(snap, 'sb-2');
    await blobs.gc({ graceMs: 0 });
    expect(blobs.refs(snap.blobId)).toEqual([`snapshot:${snap.id}`]);
    expect((await blobs.get(snap.blobId)).equals(prng(3 << 20, 7))).toBe(true);
  });
});
