/**
 * Background replication to L2 from a queue kept in SQLite (`storage_replication`): a put enqueues in the same
 * transaction that marks the blob stored, so a crash or restart loses no pending upload. Items are claimed with
 * a lease (several processes may share a data dir), uploaded with bounded concurrency, and on failure retried
 * with exponential backoff and jitter, forever: an item that cannot be uploaded only keeps its blob in L1.
 */
import type { Db } from '../db/sqlite.js';
import type { Logger } from './logger.js';
import type { S3Tier } from './s3-tier.js';

export interface ReplicationOptions {
  /** Parallel uploads. */
  concurrency: number;
  /** First retry delay; doubles per attempt up to retryMaxMs (±25% jitter). */
  retryBaseMs: number;
  retryMaxMs: number;
  /** How often an idle worker looks for items enqueued by other processes. */
  pollMs: number;
  /** A claimed item is invisible to other workers this long (must exceed an upload's timeout). */
  leaseMs: number;
}

export const DEFAULT_REPLICATION: ReplicationOptions = {
  concurrency: 4,
  retryBaseMs: 1000,
  retryMaxMs: 5 * 60_000,
  pollMs: 2000,
  leaseMs: 120_000,
};

/** What the replicator needs from the store. */
export interface ReplicationHost {
  db: Db;
  s3: S3Tier;
  logger: Logger;
  /** The bytes to upload for blob `id` (its L1 file), or 'gone' when the blob no longer needs uploading. */
  readForUpload(id: string): Promise<Buffer | 'gone'>;
  /** Called inside the transaction that removes the queue item after a successful upload. */
  markReplicated(id: string): void;
  /** A delete is still wanted (false when the blob was stored again after it was deleted). */
  deleteStillWanted(id: string): boolean;
  /** Called after uploads complete, e.g. to evict from L1. */
  afterUploads(): void;
}

interface Item {
  blob_id: string;
  op: 'put' | 'delete';
  attempts: number;
}

export interface ReplicationStatus {
  pending: number;
  failing: number;
  lastError: string | null;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Replicator {
  private active = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = true;
  private uploadedBytes = 0;

  constructor(
    private readonly host: ReplicationHost,
    private readonly opts: ReplicationOptions,
  ) {}

  /** Total bytes uploaded by this process. */
  get bytesUploaded(): number {
    return this.uploadedBytes;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.pump();
  }

  /** Something was enqueued: look now rather than at the next poll. */
  notify(): void {
    if (!this.stopped) setImmediate(() => this.pump());
  }

  status(): ReplicationStatus {
    const r = this.host.db
      .prepare(
        `SELECT COUNT(*) AS pending, SUM(attempts > 0) AS failing,
           (SELECT last_error FROM storage_replication WHERE last_error IS NOT NULL ORDER BY next_attempt_at DESC LIMIT 1) AS lastError
         FROM storage_replication`,
      )
      .get() as { pending: number; failing: number | null; lastError: string | null };
    return { pending: r.pending, failing: r.failing ?? 0, lastError: r.lastError };
  }

  private claim(): Item | null {
    const db = this.host.db;
    const now = Date.now();
    return db.transaction((): Item | null => {
      const item = db
        .prepare(
          `SELECT blob_id, op, attempts FROM storage_replication
           WHERE next_attempt_at <= ? AND lease_until <= ? ORDER BY next_attempt_at LIMIT 1`,
        )
        .get(now, now) as Item | undefined;
      if (!item) return null;
      db.prepare('UPDATE storage_replication SET lease_until = ? WHERE blob_id = ? AND op = ?').run(
        now + this.opts.leaseMs,
        item.blob_id,
        item.op,
      );
      return item;
    }).immediate();
  }

  private pump(): void {
    if (this.stopped) return;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    try {
      while (this.active.size < this.opts.concurrency) {
        const item = this.claim();
        if (!item) break;
        const key = `${item.op}:${item.blob_id}`;
        const p = this.run(item).finally(() => {
          this.active.delete(key);
          this.pump();
        });
        this.active.set(key, p);
      }
      this.schedule();
    } catch (err) {
      // SQLite busy or closed: try again at the next poll.
      if (!this.stopped) {
        this.host.logger.warn(`storage replication: ${(err as Error).message}`);
        this.timer = setTimeout(() => this.pump(), this.opts.pollMs).unref();
      }
    }
  }

  private schedule(): void {
    if (this.stopped || this.active.size >= this.opts.concurrency) return;
    const r = this.host.db
      .prepare('SELECT MIN(MAX(next_attempt_at, lease_until)) AS due FROM storage_replication')
      .get() as { due: number | null };
    const wait = r.due === null ? this.opts.pollMs : Math.min(this.opts.pollMs, Math.max(5, r.due - Date.now()));
    this.timer = setTimeout(() => this.pump(), wait);
    this.timer.unref();
  }

  private async run(item: Item): Promise<void> {
    const { db, s3 } = this.host;
    try {
      if (item.op === 'put') {
        const bytes = await this.host.readForUpload(item.blob_id);
        if (bytes !== 'gone') {
          await s3.put(item.blob_id, bytes);
          this.uploadedBytes += bytes.length;
        }
        db.transaction(() => {
          if (bytes !== 'gone') this.host.markReplicated(item.blob_id);
          db.prepare("DELETE FROM storage_replication WHERE blob_id = ? AND op = 'put'").run(item.blob_id);
        })();
        this.host.afterUploads();
      } else {
        if (this.host.deleteStillWanted(item.blob_id)) await s3.delete(item.blob_id);
        db.prepare("DELETE FROM storage_replication WHERE blob_id = ? AND op = 'delete'").run(item.blob_id);
      }
    } catch (err) {
      const attempts = item.attempts + 1;
      const backoff = Math.min(this.opts.retryMaxMs, this.opts.retryBaseMs * 2 ** Math.min(attempts - 1, 30));
      const delay = Math.round(backoff * (0.75 + Math.random() * 0.5));
      const message = (err as Error).message;
      try {
        db.prepare(
          'UPDATE storage_replication SET attempts = ?, next_attempt_at = ?, lease_until = 0, last_error = ? WHERE blob_id = ? AND op = ?',
        ).run(attempts, Date.now() + delay, message.slice(0, 500), item.blob_id, item.op);
      } catch {
        /* db closed during shutdown: the lease expires and the item is retried later */
      }
      if (attempts === 1 || attempts % 10 === 0) {
        this.host.logger.warn(`storage replication: ${item.op} ${item.blob_id} failed (attempt ${attempts}, retry in ${delay} ms): ${message}`);
      }
    }
  }

  /** Resolves when the queue is empty; rejects after `timeoutMs` naming what is still pending. */
  async flush(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const st = this.status();
      if (st.pending === 0) return;
      if (Date.now() >= deadline) {
        throw new Error(
          `replication did not drain within ${timeoutMs} ms: ${st.pending} item(s) pending` +
            (st.lastError ? `; last error: ${st.lastError}` : ''),
        );
      }
      if (!this.stopped) this.pump();
      await sleep(Math.min(50, Math.max(1, deadline - Date.now())));
    }
  }

  /** Stops claiming; waits up to `graceMs` for uploads in flight, and releases the leases of those still running. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const running = [...this.active.keys()];
    if (running.length === 0) return;
    await Promise.race([Promise.allSettled([...this.active.values()]), sleep(graceMs)]);
    for (const key of this.active.keys()) {
      const [op, id] = [key.slice(0, key.indexOf(':')), key.slice(key.indexOf(':') + 1)];
      try {
        this.host.db.prepare('UPDATE storage_replication SET lease_until = 0 WHERE blob_id = ? AND op = ?').run(id, op);
      } catch {
        /* closed */
      }
    }
  }
}
