/**
 * Garbage collection. Live = referenced in storage_refs, or a chunk of a stored manifest. gc removes blobs that
 * are not live AND whose last put is older than the grace period, so content a caller has just put (and not yet
 * referenced) survives. Safety against concurrent puts comes from SQLite: each removal first flips the row to
 * DELETING in a transaction that re-checks every condition; a put of the same id serialises with it and either
 * refreshes `last_put_at` first (gc then skips it) or waits until the row is gone and writes the blob anew.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { BlobStore } from './blob-store.js';
import { DELETING, OK, TRANSIENT_PREFIX, WRITING } from './schema.js';

export interface GcOptions {
  /** Only blobs whose last put is older than this are removed. Default 1 hour. */
  graceMs?: number;
  /** Count what would be removed, remove nothing. */
  dryRun?: boolean;
  /** Stops the run between two removals (what was removed stays removed; the rest waits for the next run). */
  signal?: AbortSignal;
}

export interface GcReport {
  removed: number;
  removedBytes: number;
  /** Blobs still stored afterwards. */
  kept: number;
  /** Files under blobs/ without a database row (e.g. from a lost database), removed when older than the grace period. */
  orphanFiles: number;
  /** Claims of writers that died before finishing, removed. */
  staleClaims: number;
}

export const DEFAULT_GC_GRACE_MS = 60 * 60_000;

/**
 * Lets the event loop turn once `YIELD_EVERY_MS` of gc work ran without a break: a gateway runs gc in its own
 * thread, and removing 20 000 blobs took ~2.6 s (sweeping 20 000 kept files ~0.16 s) of synchronous SQLite and
 * unlink calls, during which it answered nothing.
 */
const YIELD_EVERY_MS = 10;

function breather(): () => Promise<void> {
  let since = performance.now();
  return async () => {
    if (performance.now() - since < YIELD_EVERY_MS) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    since = performance.now();
  };
}

const UNREFERENCED = `NOT EXISTS (SELECT 1 FROM storage_refs r WHERE r.blob_id = b.id)
  AND NOT EXISTS (SELECT 1 FROM storage_chunks c WHERE c.chunk_id = b.id)`;

export async function runGc(store: BlobStore, opts: GcOptions): Promise<GcReport> {
  const db = store.db;
  const grace = opts.graceMs ?? DEFAULT_GC_GRACE_MS;
  const report: GcReport = { removed: 0, removedBytes: 0, kept: 0, orphanFiles: 0, staleClaims: 0 };
  const cutoff = Date.now() - grace;
  const pause = breather();
  const stopped = () => opts.signal?.aborted === true;
  if (!opts.dryRun) {
    // Pins of puts that died before recording their manifest (a live put finishes well within an hour).
    db.prepare('DELETE FROM storage_refs WHERE owner >= ? AND owner < ? AND created_at < ?').run(
      TRANSIENT_PREFIX,
      TRANSIENT_PREFIX.slice(0, -1) + String.fromCharCode(TRANSIENT_PREFIX.charCodeAt(TRANSIENT_PREFIX.length - 1) + 1),
      Date.now() - 60 * 60_000,
    );
  }
  const candidates = db.prepare(
    `SELECT id, stored_size FROM storage_blobs b WHERE b.state = ${OK} AND b.last_put_at < ? AND ${UNREFERENCED} ORDER BY b.kind DESC`,
  );
  const mark = db.prepare(
    `UPDATE storage_blobs AS b SET state = ${DELETING}, state_since = ? WHERE b.id = ? AND b.state = ${OK} AND b.last_put_at < ? AND ${UNREFERENCED}`,
  );
  if (opts.dryRun) {
    // Manifests free their chunks only when removed: a dry run counts the first pass.
    const rows = candidates.all(cutoff) as { id: string; stored_size: number }[];
    report.removed = rows.length;
    report.removedBytes = rows.reduce((a, r) => a + r.stored_size, 0);
  } else {
    // Pass after pass: removing a manifest makes its chunks candidates.
    for (;;) {
      const rows = candidates.all(cutoff) as { id: string; stored_size: number }[];
      let removedThisPass = 0;
      for (const r of rows) {
        await pause();
        if (stopped()) break;
        const ok = db.transaction(() => mark.run(Date.now(), r.id, cutoff).changes === 1).immediate();
        if (!ok) continue;
        await store.removeMarked(r.id);
        report.removed++;
        report.removedBytes += r.stored_size;
        removedThisPass++;
      }
      if (removedThisPass === 0 || stopped()) break;
    }
    // Writers that crashed between claiming an id and recording its file, and gcs that crashed mid-removal.
    const staleCutoff = Date.now() - Math.max(grace, 60 * 60_000);
    const stale = db
      .prepare(`SELECT id FROM storage_blobs WHERE (state = ${WRITING} AND state_since < ?) OR (state = ${DELETING} AND state_since < ?)`)
      .all(staleCutoff, Date.now() - 60_000) as { id: string }[];
    for (const s of stale) {
      await pause();
      if (stopped()) break;
      const ok = db
        .prepare(`UPDATE storage_blobs SET state = ${DELETING} WHERE id = ? AND ((state = ${WRITING} AND state_since < ?) OR state = ${DELETING})`)
        .run(s.id, staleCutoff).changes;
      if (ok) {
        await store.removeMarked(s.id);
        report.staleClaims++;
      }
    }
    if (!stopped()) report.orphanFiles = await sweepOrphans(store, cutoff, pause, stopped);
  }
  report.kept = (db.prepare(`SELECT COUNT(*) AS n FROM storage_blobs WHERE state = ${OK}`).get() as { n: number }).n;
  return report;
}

async function sweepOrphans(store: BlobStore, cutoff: number, pause: () => Promise<void>, stopped: () => boolean): Promise<number> {
  const has = store.db.prepare('SELECT 1 FROM storage_blobs WHERE id = ?');
  let removed = 0;
  let dirs: string[];
  try {
    dirs = fs.readdirSync(store.blobsDir).filter((d) => /^[0-9a-f]{2}$/.test(d));
  } catch {
    return 0;
  }
  for (const d of dirs) {
    await pause();
    if (stopped()) break;
    const dir = path.join(store.blobsDir, d);
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue; // removed meanwhile
    }
    for (const name of names) {
      if (names.length > 256) await pause();
      const id = d + name;
      if (!/^[0-9a-f]{64}$/.test(id) || has.get(id)) continue;
      const file = path.join(dir, name);
      try {
        if (fs.statSync(file).mtimeMs >= cutoff) continue;
        // Re-check after stat: a put may have claimed the id meanwhile (it inserts the row before writing).
        if (has.get(id)) continue;
        fs.unlinkSync(file);
        removed++;
      } catch {
        /* raced */
      }
    }
  }
  return removed;
}
