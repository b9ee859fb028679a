/**
 * BlobStore: the public facade of the storage module. Content-addressed blobs (id = SHA-256 hex of the logical
 * content) on L1 local disk, optionally replicated to L2 (S3-compatible); large inputs are split by FastCDC into
 * chunk blobs plus a manifest stored under the id of the whole content. See docs/storage.md.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { openDatabase, type Db } from '../db/sqlite.js';
import { DEFAULT_CHUNK_SIZES, StreamChunker, chunkBoundaries, validateChunkSizes, type ChunkSizes } from './chunker.js';
import { CodecPool, INLINE_BYTES, core, joinParts, type CodecChoice, type CodecName, type HashWriteResult } from './codec.js';
import type { CoreError, ManifestEntry } from './codec-core.js';
import type { S3TierConfig } from './config.js';
import {
  BlobCorruptError,
  BlobInUseError,
  BlobNotFoundError,
  StorageError,
  StorageFullError,
  StoreClosedError,
  assertBlobId,
  isNoSpace,
} from './errors.js';
import { runGc, type GcOptions, type GcReport } from './gc.js';
import { consoleLogger, type Logger } from './logger.js';
import { DEFAULT_REPLICATION, Replicator, type ReplicationOptions } from './replication.js';
import type { S3Tier } from './s3-tier.js';
import { DELETING, KIND_DATA, KIND_MANIFEST, OK, TRANSIENT_PREFIX, WRITING, migrateStorage } from './schema.js';

export interface BlobStoreOptions {
  /** Holds `blobs/` and (unless `db` is given) `faas.db`. */
  dataDir: string;
  /** An already-open database (the gateway's); otherwise `openDatabase(dataDir)` is opened and closed by the store. */
  db?: Db;
  /** L1 cap in bytes of blob files; null/undefined = no cap. Only blobs already in L2 are evicted. */
  l1MaxBytes?: number | null;
  /** L2 store; null/undefined = L1 only. */
  s3?: S3TierConfig | null;
  logger?: Logger;
  /** fsync each blob file before renaming it (survives power loss; slower). Default false. */
  fsync?: boolean;
  /** Codec worker threads (default one per core, max 4); 0 = everything in the calling thread. */
  workers?: number;
  chunkSizes?: ChunkSizes;
  /** Inputs of at least this many bytes are chunked when `chunked: 'auto'` (default: chunkSizes.max = 1 MiB). */
  chunkThreshold?: number;
  /** zstd level for 'auto' (default 1: ~3x on source code at ~300 MB/s per core; 3 gains ~6% for 25% more CPU). */
  zstdLevel?: number;
  replication?: Partial<ReplicationOptions> & { autoStart?: boolean };
  /** Bytes kept in `blobs/.reserve` and released on a full disk so delete/gc can still run (default 512 KiB; 0 = none). */
  reserveBytes?: number;
}

export interface PutOptions {
  /** 'auto' (default): chunk inputs >= chunkThreshold. true: always chunk; false: one blob. */
  chunked?: 'auto' | boolean;
  /** 'auto' (default): sample, then zstd or none. 'fast': sample, then lz4 or none. Or force a codec. */
  codec?: CodecChoice;
  /**
   * Records a reference from this owner in the same transaction that stores the blob, so no gc can slip in
   * between the put and a later addRef (which, with a grace period shorter than that gap, could fail).
   */
  ref?: string;
}

export interface PutResult {
  id: string;
  /** Logical bytes. */
  size: number;
  /** Bytes the stored form of this content occupies (manifest + all its chunks, compressed, headers included). */
  storedBytes: number;
  /** Bytes this put added to the store (0 when everything was already there). */
  newBytes: number;
  /** Chunks of a chunked blob (0 for a single blob). */
  chunks: number;
  /** Chunks that were not stored before this put. */
  newChunks: number;
  /** 'manifest' for a chunked blob. */
  codec: CodecName | 'manifest';
  /** True when the id was already stored as a whole. */
  deduplicated: boolean;
}

export interface BlobStat {
  id: string;
  size: number;
  storedBytes: number;
  kind: 'blob' | 'chunked';
  codec: CodecName | 'manifest';
  chunks: number;
  inL1: boolean;
  inL2: boolean;
  createdAt: Date;
  lastAccessAt: Date;
  refs: string[];
}

export interface BlobListEntry {
  id: string;
  size: number;
  kind: 'blob' | 'chunked';
}

export interface StorageStats {
  /** Blob files (data blobs, chunks and manifests). */
  blobs: number;
  /** Objects put directly (not only as chunks). */
  objects: number;
  chunks: number;
  manifests: number;
  /** Sum of the sizes of all objects put (what callers stored). */
  logical_bytes: number;
  /** Distinct data bytes before compression (after dedup). */
  unique_bytes: number;
  /** Bytes of all blob files, whatever their tier. */
  stored_bytes: number;
  l1_bytes: number;
  l1_max_bytes: number | null;
  l2_bytes: number;
  /** logical_bytes / unique_bytes. */
  dedup_ratio: number;
  /** unique_bytes / stored bytes of data blobs. */
  compression_ratio: number;
  by_codec: Record<string, { blobs: number; logical_bytes: number; stored_bytes: number }>;
  pending_replication: number;
  failing_replication: number;
  last_replication_error: string | null;
  refs: number;
  l2: string | null;
}

export interface VerifyProblem {
  id: string;
  problem: 'corrupt' | 'missing' | 'missing-chunk';
  detail: string;
  repaired?: string;
}

export interface VerifyReport {
  checked: number;
  bytes: number;
  ok: number;
  problems: VerifyProblem[];
}

interface BlobRow {
  id: string;
  kind: number;
  state: number;
  size: number;
  stored_size: number;
  codec: string;
  is_root: number;
  in_l1: number;
  in_l2: number;
  created_at: number;
  last_put_at: number;
  last_access_at: number;
  state_since: number;
}

type Claim = 'write' | 'exists';

/**
 * Chunks claimed per transaction of a put (fewer while the input ends or nothing else is in flight). Each
 * transaction rewrites the index pages its random ids land on: one per chunk cost 0.7 CPU-ms per MiB of the
 * put's own thread, 16 at a time 0.2.
 */
const CLAIM_BATCH = 16;
/**
 * After this many chunks of a put in a row were stored compressed, its next chunks are compressed without
 * sampling first (the sample costs ~6% of compressing a 256 KiB chunk); any chunk stored raw restarts sampling.
 */
const TRUST_COMPRESSION = 8;

/** A chunk of a chunked put as a worker left it (`res.tmp`: its compressed file, not yet renamed into place). */
interface HashedChunk {
  index: number;
  /** Its bytes, as views of the pieces of input it spans. */
  parts: Buffer[];
  size: number;
  res: HashWriteResult;
}

/** A blob file in place, to be recorded in storage_blobs. */
interface StoredBlob {
  id: string;
  kind: number;
  size: number;
  storedSize: number;
  codec: CodecName;
  isRoot: boolean;
}

/** What storing the chunks of one input did. */
interface StoredChunks {
  entries: ManifestEntry[];
  added: number;
  stored: number;
  newChunks: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A DELETING row older than this belongs to a crashed gc: a put may take the id over. */
const STALE_DELETING_MS = 30_000;


function toBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** Runs `fn` over items with at most `limit` in flight; the first error wins after in-flight work settles. */
async function mapLimit<T>(items: T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown = null;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (failed === null && next < items.length) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (err) {
        if (failed === null) failed = err;
      }
    }
  });
  await Promise.all(workers);
  if (failed !== null) throw failed;
}

export class BlobStore {
  readonly dataDir: string;
  readonly blobsDir: string;
  readonly db: Db;
  readonly s3: S3Tier | null;
  readonly logger: Logger;
  readonly l1MaxBytes: number | null;
  private readonly ownsDb: boolean;
  private readonly pool: CodecPool;
  private readonly fsync: boolean;
  private readonly chunkSizes: ChunkSizes;
  private readonly chunkThreshold: number;
  private readonly zstdLevel: number;
  private readonly replicator: Replicator | null;
  private readonly tmpDir: string;
  private tmpSeq = 0;
  /** Makes temp names unique across stores (drawn once: crypto.randomBytes per file cost ~30 µs). */
  private readonly tmpTag = crypto.randomBytes(4).toString('hex');
  private closed = false;
  private evicting = false;
  private l1Bytes = 0;
  private accessed = new Set<string>();
  private accessTimer: NodeJS.Timeout | null = null;
  /** Parallel codec jobs per get (and verify). */
  private readonly parallel: number;
  /**
   * Chunks of one put in the workers at a time: 4 per worker, so a worker still has queued work while this
   * thread waits for a core (3 busy threads on 2 cores); 2 per worker left them idle ~25% of the time.
   */
  private readonly putWindow: number;

  private constructor(opts: BlobStoreOptions, s3: S3Tier | null) {
    this.dataDir = path.resolve(opts.dataDir);
    this.blobsDir = path.join(this.dataDir, 'blobs');
    this.tmpDir = path.join(this.blobsDir, 'tmp');
    fs.mkdirSync(this.tmpDir, { recursive: true });
    // The 256 fan-out folders, made once rather than checked on every write.
    if (!fs.existsSync(path.join(this.blobsDir, 'ff'))) {
      for (let i = 0; i < 256; i++) fs.mkdirSync(path.join(this.blobsDir, i.toString(16).padStart(2, '0')), { recursive: true });
    }
    this.ownsDb = !opts.db;
    this.db = opts.db ?? openDatabase(this.dataDir);
    migrateStorage(this.db);
    this.logger = opts.logger ?? consoleLogger;
    this.l1MaxBytes = opts.l1MaxBytes ?? null;
    this.fsync = opts.fsync ?? false;
    this.chunkSizes = opts.chunkSizes ?? DEFAULT_CHUNK_SIZES;
    validateChunkSizes(this.chunkSizes);
    this.chunkThreshold = opts.chunkThreshold ?? this.chunkSizes.max;
    this.zstdLevel = opts.zstdLevel ?? 1;
    this.pool = new CodecPool(opts.workers);
    this.pool.warm();
    this.parallel = Math.max(2, this.pool.size * 2);
    this.putWindow = Math.max(2, this.pool.size * 4);
    this.s3 = s3;
    if (this.s3) {
      const { autoStart = true, ...rest } = opts.replication ?? {};
      const ropts = { ...DEFAULT_REPLICATION, ...rest };
      ropts.leaseMs = Math.max(ropts.leaseMs, 2 * (this.s3.config.requestTimeoutMs + this.s3.config.connectTimeoutMs));
      this.replicator = new Replicator(
        {
          db: this.db,
          s3: this.s3,
          logger: this.logger,
          readForUpload: (id) => this.readForUpload(id),
          markReplicated: (id) => {
            this.st('UPDATE storage_blobs SET in_l2 = 1 WHERE id = ?').run(id);
          },
          deleteStillWanted: (id) => !this.st('SELECT 1 FROM storage_blobs WHERE id = ? AND state = ?').get(id, OK),
          afterUploads: () => this.maybeEvict(),
        },
        ropts,
      );
      // Blobs stored while no L2 was configured are replicated now.
      this.st(
          `INSERT OR IGNORE INTO storage_replication (blob_id, op, next_attempt_at, enqueued_at)
           SELECT id, 'put', ?, ? FROM storage_blobs WHERE state = ? AND in_l2 = 0 AND in_l1 = 1`,
        )
        .run(Date.now(), Date.now(), OK);
      if (autoStart) this.replicator.start();
    } else {
      this.replicator = null;
    }
    this.l1Bytes = this.sumL1();
    this.cleanTmp();
    this.reservePath = path.join(this.blobsDir, '.reserve');
    this.reserveBytes = opts.reserveBytes ?? 512 * 1024;
    this.ensureReserve();
  }

  private readonly reservePath: string;
  private readonly reserveBytes: number;

  /**
   * A file of `reserveBytes` kept in the data dir and released when the disk fills up, so that delete and gc
   * (which must write to SQLite before they can free anything) still work on a full disk. Best effort.
   */
  private ensureReserve(): void {
    if (this.reserveBytes <= 0 || fs.existsSync(this.reservePath)) return;
    const tmp = `${this.reservePath}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, Buffer.alloc(this.reserveBytes));
      fs.renameSync(tmp, this.reservePath);
    } catch {
      fs.rmSync(tmp, { force: true });
    }
  }

  private releaseReserve(): boolean {
    try {
      fs.unlinkSync(this.reservePath);
      this.logger.warn(`disk full in ${this.dataDir}: released the ${this.reserveBytes}-byte reserve so delete and gc can proceed`);
      return true;
    } catch {
      return false;
    }
  }

  /** Runs a space-freeing operation; on a full disk releases the reserve and retries once. */
  private async withReserve<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (!isNoSpace(err) || !this.releaseReserve()) throw isNoSpace(err) ? new StorageFullError(this.dataDir, err) : err;
      return await fn();
    }
  }

  /** Opens (creating when needed) the store in `opts.dataDir`. */
  static async open(opts: BlobStoreOptions): Promise<BlobStore> {
    // The AWS SDK takes ~0.3 s to load: only when an L2 is configured.
    const s3 = opts.s3 ? new (await import('./s3-tier.js')).S3Tier(opts.s3) : null;
    try {
      return new BlobStore(opts, s3);
    } catch (err) {
      s3?.close();
      throw err;
    }
  }

  // ---------------------------------------------------------------- paths & rows

  /** `<data-dir>/blobs/ab/cdef…` */
  blobPath(id: string): string {
    return core().blobFile(this.blobsDir, id);
  }

  private tmpPath(id: string): string {
    return core().tmpFile(this.tmpDir, id, this.tmpName());
  }

  /** `<pid>.<n>.<random>.tmp`: unique across stores and processes (the random part is drawn once per store). */
  private tmpName(): string {
    return `${process.pid}.${++this.tmpSeq}.${this.tmpTag}.tmp`;
  }

  private cleanTmp(): void {
    // Leftovers of crashed writers (never renamed, so never acknowledged). Young files may belong to a live writer.
    const cutoff = Date.now() - 60 * 60_000;
    for (const name of fs.readdirSync(this.tmpDir)) {
      const p = path.join(this.tmpDir, name);
      try {
        if (fs.statSync(p).mtimeMs < cutoff) fs.unlinkSync(p);
      } catch {
        /* raced with its writer */
      }
    }
  }

  private stmts = new Map<string, import('better-sqlite3').Statement>();
  /** A cached prepared statement. */
  private st(sql: string): import('better-sqlite3').Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  private row(id: string): BlobRow | undefined {
    return this.st('SELECT * FROM storage_blobs WHERE id = ?').get(id) as BlobRow | undefined;
  }

  private sumL1(): number {
    const r = this.st('SELECT COALESCE(SUM(stored_size), 0) AS n FROM storage_blobs WHERE in_l1 = 1 AND state = ?').get(OK) as {
      n: number;
    };
    return r.n;
  }

  private check(): void {
    if (this.closed) throw new StoreClosedError();
  }

  private wrapWriteError(err: unknown): unknown {
    if (isNoSpace(err)) return new StorageFullError(this.dataDir, err);
    return err;
  }

  // ---------------------------------------------------------------- claims

  /** Claims `id` for writing, or refreshes an existing blob's GC clock. Waits while a gc deletes the id. */
  private async claim(id: string, kind: number, pin: string | null): Promise<Claim> {
    for (let waited = 0; ; waited += 5) {
      const [r] = this.claimMany([id], kind, pin);
      if (r !== 'wait') return r!;
      if (waited > STALE_DELETING_MS + 5000) throw new StorageError(`blob ${id} stays in state "deleting"; is a gc stuck?`);
      await sleep(5);
    }
  }

  /**
   * Records `written` blob files and claims `ids`, all in ONE transaction (a transaction per blob costs about as
   * much CPU as hashing a 256 KiB chunk). 'wait' means a gc is deleting that id: retry it with `claim`.
   */
  private claimMany(ids: string[], kind: number, pin: string | null, written: StoredBlob[] = []): (Claim | 'wait')[] {
    const now = Date.now();
    const decide = (id: string): Claim | 'wait' | 'exists-l1' => {
      const row = this.st('SELECT state, in_l1, in_l2, state_since FROM storage_blobs WHERE id = ?').get(id) as
        | Pick<BlobRow, 'state' | 'in_l1' | 'in_l2' | 'state_since'>
        | undefined;
      if (!row) {
        this.st(
          `INSERT INTO storage_blobs (id, kind, state, size, stored_size, codec, in_l1, in_l2, created_at, last_put_at, last_access_at, state_since)
           VALUES (?, ?, ?, 0, 0, 'none', 0, 0, ?, ?, ?, ?)`,
        ).run(id, kind, WRITING, now, now, now, now);
        return 'write';
      }
      if (row.state === OK) {
        if (row.in_l1 || row.in_l2) {
          this.st('UPDATE storage_blobs SET last_put_at = ? WHERE id = ?').run(now, id);
          return row.in_l1 ? 'exists-l1' : 'exists';
        }
        return 'write'; // known but lost everywhere (quarantined): this put restores it
      }
      if (row.state === DELETING && now - row.state_since < STALE_DELETING_MS) return 'wait';
      this.st('UPDATE storage_blobs SET state = ?, state_since = ?, last_put_at = ? WHERE id = ?').run(WRITING, now, now, id);
      return 'write';
    };
    let decided: ReturnType<typeof decide>[];
    try {
      decided = this.db
        .transaction(() => {
          for (const w of written) this.recordStored(w, now);
          return ids.map((id) => {
            const res = decide(id);
            // The pin is a reference taken in the same transaction as the claim: gc cannot remove the blob
            // between this put and the reference its caller (or the manifest being built) needs.
            if (pin && res !== 'wait') this.st('INSERT OR IGNORE INTO storage_refs (owner, blob_id, created_at) VALUES (?, ?, ?)').run(pin, id, now);
            return res;
          });
        })
        .immediate();
    } catch (err) {
      throw this.wrapWriteError(err);
    }
    if (written.length > 0) this.scheduleEvict();
    return decided.map((r, i) => {
      if (r !== 'exists-l1') return r;
      // The row says L1 but the file is gone (deleted by hand?) and L2 does not have it: rewrite it.
      if (fs.existsSync(this.blobPath(ids[i]!))) return 'exists';
      return this.row(ids[i]!)?.in_l2 ? 'exists' : 'write';
    });
  }

  /** Records written blob files in one transaction. */
  private markStored(blobs: StoredBlob[]): void {
    const now = Date.now();
    try {
      this.db.transaction(() => {
        for (const blob of blobs) this.recordStored(blob, now);
      })();
    } catch (err) {
      throw this.wrapWriteError(err);
    }
    this.scheduleEvict();
  }

  /** The row of a written blob file (an upsert: robust against a concurrent writer of the same id); inside a transaction. */
  private recordStored(b: StoredBlob, now: number): void {
    const prev = this.st('SELECT in_l1 FROM storage_blobs WHERE id = ? AND state = ?').get(b.id, OK) as { in_l1: number } | undefined;
    this.st(
      `INSERT INTO storage_blobs (id, kind, state, size, stored_size, codec, is_root, in_l1, in_l2, created_at, last_put_at, last_access_at, state_since)
       VALUES (@id, @kind, ${OK}, @size, @stored, @codec, @root, 1, 0, @now, @now, @now, @now)
       ON CONFLICT (id) DO UPDATE SET kind = @kind, state = ${OK}, size = @size, stored_size = @stored, codec = @codec,
         is_root = MAX(is_root, @root), in_l1 = 1, last_put_at = @now, last_access_at = @now, state_since = @now`,
    ).run({ id: b.id, kind: b.kind, size: b.size, stored: b.storedSize, codec: b.codec, root: b.isRoot ? 1 : 0, now });
    if (this.s3) {
      this.st(
        `INSERT OR IGNORE INTO storage_replication (blob_id, op, next_attempt_at, enqueued_at)
         SELECT ?, 'put', ?, ? WHERE NOT EXISTS (SELECT 1 FROM storage_blobs WHERE id = ? AND in_l2 = 1)`,
      ).run(b.id, now, now, b.id);
      this.st("DELETE FROM storage_replication WHERE blob_id = ? AND op = 'delete'").run(b.id);
    }
    if (!prev || !prev.in_l1) this.l1Bytes += b.storedSize;
  }

  /** Drops a claim after a failed write, unless another writer completed the blob meanwhile. */
  private releaseClaim(id: string, pin: string | null): void {
    try {
      if (pin) this.st('DELETE FROM storage_refs WHERE owner = ? AND blob_id = ?').run(pin, id);
      this.st('DELETE FROM storage_blobs WHERE id = ? AND state = ?').run(id, WRITING);
    } catch {
      /* the row stays WRITING; gc removes stale claims */
    }
  }

  private markRoot(id: string): void {
    this.st('UPDATE storage_blobs SET is_root = 1 WHERE id = ?').run(id);
  }

  // ---------------------------------------------------------------- put

  /** Stores a data blob whose id is known, as a root blob. Returns the bytes added (0 when it existed). */
  private async storeData(id: string, data: Uint8Array, choice: CodecChoice, pin: string | null): Promise<{ added: number; storedSize: number; codec: CodecName }> {
    const claim = await this.claim(id, KIND_DATA, pin);
    if (claim === 'exists') {
      this.markRoot(id);
      const r = this.row(id)!;
      return { added: 0, storedSize: r.stored_size, codec: r.codec as CodecName };
    }
    const blob = await this.writeData(id, data, choice, true, pin);
    this.markStored([blob]);
    return { added: blob.storedSize, storedSize: blob.storedSize, codec: blob.codec };
  }

  /** Compresses and writes the file of a claimed id (in a worker); on failure releases the claim. */
  private async writeData(id: string, data: Uint8Array, choice: CodecChoice, isRoot: boolean, pin: string | null): Promise<StoredBlob> {
    try {
      const res = await this.writeWithRoom(() =>
        this.pool.encodeWrite({ data, choice, level: this.zstdLevel, tmp: this.tmpPath(id), final: this.blobPath(id), fsync: this.fsync }),
      );
      return { id, kind: KIND_DATA, size: data.length, storedSize: res.storedSize, codec: res.codec, isRoot };
    } catch (err) {
      this.releaseClaim(id, pin);
      throw this.wrapWriteError(err);
    }
  }

  /** Runs a write; on a full disk, evicts what L2 holds and retries once. */
  private async writeWithRoom<T>(write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (err) {
      if (!isNoSpace(err) || !this.s3) throw err;
      const freed = this.evict(Math.max(64 * 1024 * 1024, Math.floor(this.l1Bytes / 10)), true);
      if (freed === 0) throw err;
      this.logger.warn(`disk full in ${this.dataDir}: evicted ${freed} bytes already in L2 and retrying`);
      return await write();
    }
  }

  /**
   * Stores content and returns its id (SHA-256 hex of the content). Buffers and streams of at least
   * `chunkThreshold` bytes are split into chunks (FastCDC) plus a manifest stored under the content's id.
   * Once this resolves the blob is on L1 disk (and queued for L2): a crash afterwards does not lose it.
   */
  async put(input: Uint8Array | Readable | AsyncIterable<Uint8Array>, opts: PutOptions = {}): Promise<PutResult> {
    this.check();
    const choice = opts.codec ?? 'auto';
    const chunked = opts.chunked ?? 'auto';
    const ref = opts.ref ?? null;
    if (ref === '') throw new StorageError('put: ref must be a non-empty owner string');
    if (input instanceof Uint8Array) {
      const buf = toBuffer(input);
      if (chunked === true || (chunked === 'auto' && buf.length >= this.chunkThreshold)) return this.putChunked(this.sliceAll(buf), choice, ref);
      return this.putSingle(buf, choice, ref);
    }
    // Stream: buffer up to the threshold, then switch to streaming chunking.
    const chunker = new StreamChunker(this.chunkSizes);
    const head: Buffer[] = [];
    let headBytes = 0;
    const it = (input as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    let first: IteratorResult<Uint8Array> | null = null;
    for (;;) {
      const r = await it.next();
      if (r.done) break;
      const piece = toBuffer(typeof r.value === 'string' ? Buffer.from(r.value) : r.value);
      head.push(piece);
      headBytes += piece.length;
      if (chunked !== false && (chunked === true || headBytes >= this.chunkThreshold)) {
        first = r;
        break;
      }
    }
    if (!first) {
      const all = Buffer.concat(head, headBytes);
      if (chunked === true) return this.putChunked(this.sliceAll(all), choice, ref);
      return this.putSingle(all, choice, ref);
    }
    async function* pieces(): AsyncGenerator<Buffer[]> {
      for (const p of head) for (const c of chunker.push(p)) yield c;
      for (;;) {
        const r = await it.next();
        if (r.done) break;
        const v = r.value;
        for (const c of chunker.push(toBuffer(typeof v === 'string' ? Buffer.from(v) : v))) yield c;
      }
      for (const c of chunker.end()) yield c;
    }
    return this.putChunked(pieces(), choice, ref);
  }

  private *sliceAll(buf: Buffer): Generator<Buffer[]> {
    let off = 0;
    for (const len of chunkBoundaries(buf, this.chunkSizes)) {
      yield [buf.subarray(off, off + len)];
      off += len;
    }
  }

  private async putSingle(buf: Buffer, choice: CodecChoice, ref: string | null): Promise<PutResult> {
    const id = core().sha256hex(buf);
    const r = await this.storeData(id, buf, choice, ref);
    return {
      id,
      size: buf.length,
      storedBytes: r.storedSize,
      newBytes: r.added,
      chunks: 0,
      newChunks: 0,
      codec: r.codec,
      deduplicated: r.added === 0,
    };
  }

  /**
   * Chunks are split in this thread (~0.5 ms/MiB in wasm) and fed to the whole-content hash, one at a time as the
   * pipeline has room, so the event loop turns between chunks; the workers hash, compress and write them.
   */
  private async putChunked(chunks: Iterable<Buffer[]> | AsyncIterable<Buffer[]>, choice: CodecChoice, ref: string | null): Promise<PutResult> {
    const whole = crypto.createHash('sha256');
    async function* hashed(): AsyncGenerator<Buffer[]> {
      for await (const parts of chunks) {
        for (const p of parts) whole.update(p);
        yield parts;
      }
    }
    return this.withPin(async (pin) => {
      const stored = await this.storeChunks(hashed(), choice, pin);
      return this.storeManifest(whole.digest('hex'), stored, choice, ref, pin);
    });
  }

  /** Chunks are pinned by a transient reference until the manifest that lists them is recorded. */
  private async withPin<T>(fn: (pin: string) => Promise<T>): Promise<T> {
    const pin = `${TRANSIENT_PREFIX}${process.pid}:${++this.tmpSeq}:${this.tmpTag}`;
    try {
      return await fn(pin);
    } finally {
      try {
        this.st('DELETE FROM storage_refs WHERE owner = ?').run(pin);
      } catch {
        /* gc drops stale transient pins */
      }
    }
  }

  /**
   * Stores chunks with up to `putWindow` of them in the workers at a time. A worker hashes a chunk and, unless its
   * file exists, writes it compressed to a temp file; this thread then claims the id and renames the file into
   * place. Claims wait until `CLAIM_BATCH` chunks came back (or the input ended, or nothing else is in flight);
   * one transaction then records the files renamed since the last one and claims them all.
   */
  private async storeChunks(chunks: AsyncIterator<Buffer[]>, choice: CodecChoice, pin: string): Promise<StoredChunks> {
    const out: StoredChunks = { entries: [], added: 0, stored: 0, newChunks: 0 };
    const inflight = new Set<Promise<void>>();
    /** Chunks back from the workers, not claimed yet. */
    const hashed: HashedChunk[] = [];
    /** Blob files in place whose rows are not recorded yet. */
    const written: StoredBlob[] = [];
    let failed: unknown = null;
    const track = (p: Promise<unknown>) => {
      const t = p
        .then(
          () => {},
          (err) => {
            failed ??= err;
          },
        )
        .finally(() => inflight.delete(t));
      inflight.add(t);
    };
    const wrote = (blob: StoredBlob) => {
      written.push(blob);
      out.added += blob.storedSize;
      out.stored += blob.storedSize;
      out.newChunks++;
    };
    /** A chunk whose claim is in: rename its temp file into place, or drop it when the blob exists. */
    const settle = async ({ parts, size, res }: HashedChunk, claim: Claim | 'wait'): Promise<void> => {
      if (claim === 'wait') {
        try {
          claim = await this.claim(res.id, KIND_DATA, pin);
        } catch (err) {
          if (res.tmp) fs.rmSync(res.tmp, { force: true });
          throw err;
        }
      }
      if (claim === 'exists') {
        if (res.tmp) fs.rmSync(res.tmp, { force: true }); // another writer stored it meanwhile
        out.stored += this.row(res.id)!.stored_size;
      } else if (res.tmp) {
        try {
          core().commitTmp(res.tmp, this.blobPath(res.id));
        } catch (err) {
          this.releaseClaim(res.id, pin);
          throw this.wrapWriteError(err);
        }
        wrote({ id: res.id, kind: KIND_DATA, size, storedSize: res.storedSize, codec: res.codec!, isRoot: false });
      } else {
        // Its file existed when the worker looked, but the database does not know it (or it was being deleted).
        wrote(await this.writeData(res.id, joinParts(parts), choice, false, pin));
      }
    };
    let more = true;
    /** Chunks in the workers, not back yet. */
    let hashing = 0;
    /** Chunks of this put written compressed in a row: past TRUST_COMPRESSION, the next skip the codec sample. */
    let compressedRun = 0;
    try {
      while ((more || inflight.size > 0) && failed === null) {
        while (more && inflight.size < this.putWindow) {
          const r = await chunks.next();
          if (r.done) {
            more = false;
            break;
          }
          const parts = r.value;
          const size = parts.reduce((n, p) => n + p.length, 0);
          const index = out.entries.push({ id: '', size }) - 1;
          const job = {
            data: parts,
            choice,
            level: this.zstdLevel,
            blobsDir: this.blobsDir,
            tmpDir: this.tmpDir,
            tmpName: this.tmpName(),
            fsync: this.fsync,
            sample: compressedRun < TRUST_COMPRESSION,
          };
          hashing++;
          track(
            this.writeWithRoom(() => this.pool.hashWrite(job))
              .then((res) => {
                // A dedup hit (no codec) says nothing about the data; one stored raw restarts the sampling.
                if (res.codec !== null) compressedRun = res.codec === 'none' ? 0 : compressedRun + 1;
                hashed.push({ index, parts, size, res });
              })
              .finally(() => hashing--),
          );
        }
        if (inflight.size > 0) await Promise.race(inflight);
        // Nothing to claim, or a fuller batch is on its way (what was renamed meanwhile is recorded with it).
        if (hashed.length === 0 || (hashed.length < CLAIM_BATCH && (more || hashing > 0))) continue;
        const batch = hashed.splice(0);
        let claims: Array<Claim | 'wait'>;
        try {
          claims = this.claimMany(batch.map((c) => c.res.id), KIND_DATA, pin, written);
        } catch (err) {
          // SQLite failed (a full disk fills the database too): the batch's temp files are removed below.
          hashed.push(...batch);
          throw err;
        }
        written.length = 0;
        batch.forEach((c, i) => {
          out.entries[c.index]!.id = c.res.id;
          track(settle(c, claims[i]!));
        });
      }
    } finally {
      // On failure too: let the work in flight settle, record what was renamed, remove unclaimed temp files.
      await Promise.allSettled(inflight);
      for (const c of hashed) if (c.res.tmp) fs.rmSync(c.res.tmp, { force: true });
      if (written.length > 0) {
        try {
          this.markStored(written);
        } catch (err) {
          failed ??= err;
        }
      }
    }
    if (failed !== null) throw this.wrapWriteError(failed);
    return out;
  }

  /** Records the manifest of stored chunks under the id of the whole content (or the one chunk as the blob). */
  private async storeManifest(id: string, chunks: StoredChunks, choice: CodecChoice, ref: string | null, pin: string): Promise<PutResult> {
    const { entries, added, stored, newChunks } = chunks;
    const total = entries.reduce((a, e) => a + e.size, 0);
    if (entries.length <= 1) {
      // One chunk: the chunk is the blob.
      if (entries.length === 0) return this.putSingle(Buffer.alloc(0), choice, ref);
      this.markRoot(id);
      if (ref) this.addRef(ref, id);
      const r = this.row(id)!;
      return { id, size: total, storedBytes: r.stored_size, newBytes: added, chunks: 0, newChunks: 0, codec: r.codec as CodecName, deduplicated: added === 0 };
    }
    const claim = await this.claim(id, KIND_MANIFEST, ref ?? pin);
    if (claim === 'exists') {
      this.markRoot(id);
      const r = this.row(id)!;
      return {
        id,
        size: total,
        storedBytes: r.kind === KIND_MANIFEST ? r.stored_size + stored : r.stored_size,
        newBytes: added,
        chunks: entries.length,
        newChunks,
        codec: r.kind === KIND_MANIFEST ? 'manifest' : (r.codec as CodecName),
        deduplicated: true,
      };
    }
    const c = core();
    const file = c.encodeManifestFile(c.encodeManifest(entries, total), total);
    try {
      await this.writeWithRoom(async () => c.writeAtomic(this.tmpPath(id), this.blobPath(id), file.parts, this.fsync));
    } catch (err) {
      this.releaseClaim(id, ref ?? pin);
      throw this.wrapWriteError(err);
    }
    try {
      this.db.transaction(() => {
        this.st('DELETE FROM storage_chunks WHERE manifest_id = ?').run(id);
        const ins = this.st('INSERT INTO storage_chunks (manifest_id, seq, chunk_id, size) VALUES (?, ?, ?, ?)');
        entries.forEach((e, i) => ins.run(id, i, e.id, e.size));
        this.recordStored({ id, kind: KIND_MANIFEST, size: total, storedSize: file.storedSize, codec: 'none', isRoot: true }, Date.now());
      })();
    } catch (err) {
      throw this.wrapWriteError(err);
    }
    return {
      id,
      size: total,
      storedBytes: stored + file.storedSize,
      newBytes: added + file.storedSize,
      chunks: entries.length,
      newChunks,
      codec: 'manifest',
      deduplicated: false,
    };
  }

  // ---------------------------------------------------------------- get

  private touch(id: string): void {
    this.accessed.add(id);
    if (!this.accessTimer) {
      this.accessTimer = setTimeout(() => this.flushAccess(), 1000);
      this.accessTimer.unref();
    }
  }

  private flushAccess(): void {
    if (this.accessTimer) clearTimeout(this.accessTimer);
    this.accessTimer = null;
    if (this.accessed.size === 0 || this.closed) return;
    const ids = [...this.accessed];
    this.accessed.clear();
    const now = Date.now();
    try {
      const st = this.st('UPDATE storage_blobs SET last_access_at = ? WHERE id = ?');
      this.db.transaction(() => ids.forEach((id) => st.run(now, id)))();
    } catch {
      /* LRU clock only */
    }
  }

  private corrupt(err: unknown, id: string, where: string): Error {
    const e = err as CoreError;
    if (e?.code === 'CORRUPT') return new BlobCorruptError(id, e.message, where);
    return err as Error;
  }

  /**
   * Decoded bytes of one stored blob (data blob or manifest payload), verified. Reads L1, falls back to L2
   * (read-through into L1) when the file is absent, and heals a corrupt L1 file from L2 when L2 has it.
   */
  private async readBlob(id: string, row: BlobRow | undefined, ctx?: string): Promise<{ kind: 0 | 1; data: Uint8Array }> {
    if (row && row.state === OK && row.in_l1) {
      const file = this.blobPath(id);
      try {
        const d = await this.pool.readDecode(file, id, row.size);
        this.touch(id);
        return d;
      } catch (err) {
        const code = (err as CoreError).code;
        if (code === 'CORRUPT') {
          if (!this.s3 || !row.in_l2) throw this.corrupt(err, id, ctx ?? file);
          this.logger.warn(`blob ${id}: L1 file is corrupt (${(err as Error).message}); re-fetching it from L2`);
        } else if (code !== 'ENOENT') {
          throw err;
        } else if (!this.s3) {
          throw new BlobCorruptError(id, `its file ${file} is missing`, ctx ?? '');
        }
      }
    }
    if (this.s3 && (!row || row.state === OK)) {
      const bytes = await this.s3.get(id);
      if (bytes) {
        let d;
        try {
          d = core().decode(bytes, id);
        } catch (err) {
          throw this.corrupt(err, id, `${ctx ? ctx + ', ' : ''}L2 object at ${this.s3.where}`);
        }
        this.admitFromL2(id, d.kind, d.kind === 1 ? bytes.readUInt32LE(8) + bytes.readUInt32LE(12) * 2 ** 32 : d.data.length, bytes, d.codec, d.kind === 1 ? d.data : null);
        return d;
      }
    }
    if (row && row.state === OK) throw new BlobCorruptError(id, 'neither L1 nor L2 has its bytes', ctx ?? '');
    throw new BlobNotFoundError(id, ctx ?? '');
  }

  /** Writes bytes fetched from L2 into L1 and records them. */
  private admitFromL2(id: string, kind: 0 | 1, size: number, bytes: Buffer, codec: string, manifest: Uint8Array | null): void {
    try {
      core().writeAtomic(this.tmpPath(id), this.blobPath(id), [bytes], this.fsync);
    } catch (err) {
      this.logger.warn(`blob ${id}: could not cache the L2 copy in L1: ${(err as Error).message}`);
      return;
    }
    const now = Date.now();
    this.db.transaction(() => {
      const prev = this.row(id);
      if (prev) {
        this.st('UPDATE storage_blobs SET in_l1 = 1, in_l2 = 1, state = ?, last_access_at = ? WHERE id = ?').run(OK, now, id);
      } else {
        this.st(
            `INSERT INTO storage_blobs (id, kind, state, size, stored_size, codec, in_l1, in_l2, created_at, last_put_at, last_access_at, state_since)
             VALUES (?, ?, ?, ?, ?, ?, 1, 1, ?, ?, ?, ?)`,
          )
          .run(id, kind, OK, size, bytes.length, codec, now, now, now, now);
        if (manifest) {
          const ins = this.st('INSERT OR REPLACE INTO storage_chunks (manifest_id, seq, chunk_id, size) VALUES (?, ?, ?, ?)');
          core().parseManifest(manifest, id).forEach((e, i) => ins.run(id, i, e.id, e.size));
        }
      }
      if (!prev || !prev.in_l1) this.l1Bytes += bytes.length;
    })();
    this.scheduleEvict();
  }

  private async readChunk(manifestId: string, e: ManifestEntry, index: number, count: number): Promise<Uint8Array> {
    const ctx = `chunk ${index + 1}/${count} of ${manifestId}`;
    let d;
    try {
      d = await this.readBlob(e.id, this.row(e.id), ctx);
    } catch (err) {
      if (err instanceof BlobNotFoundError) throw new BlobCorruptError(manifestId, `chunk ${index + 1}/${count} (${e.id}) is missing`);
      if (err instanceof BlobCorruptError && err.id === e.id) throw new BlobCorruptError(manifestId, `chunk ${index + 1}/${count} is corrupt: ${err.reason}`, err.location);
      throw err;
    }
    if (d.kind !== 0 || d.data.length !== e.size) throw new BlobCorruptError(manifestId, `chunk ${index + 1}/${count} (${e.id}) has the wrong kind or size`);
    return d.data;
  }

  /** The whole content, verified (every chunk against its id; a manifest against its checksum). */
  async get(id: string): Promise<Buffer> {
    this.check();
    assertBlobId(id);
    const row = this.row(id);
    const first = await this.readBlob(id, row);
    if (first.kind === 0) return toBuffer(first.data);
    const entries = core().parseManifest(first.data, id);
    const total = entries.reduce((a, e) => a + e.size, 0);
    // With workers, the result lives in shared memory and each worker decodes its chunks straight into place:
    // no copy back to this thread. (The returned Buffer is then backed by a SharedArrayBuffer.)
    const sab = this.pool.size > 0 ? new SharedArrayBuffer(total) : null;
    const out = sab ? Buffer.from(sab) : Buffer.allocUnsafe(total);
    const offsets: number[] = [];
    let off = 0;
    for (const e of entries) {
      offsets.push(off);
      off += e.size;
    }
    await mapLimit(entries, this.parallel, async (e, i) => {
      if (sab && e.size > INLINE_BYTES) {
        const row = this.row(e.id);
        if (row && row.state === OK && row.in_l1) {
          try {
            if (await this.pool.readDecodeInto(this.blobPath(e.id), e.id, sab, offsets[i]!, e.size)) {
              this.touch(e.id);
              return;
            }
          } catch (err) {
            const code = (err as CoreError).code;
            // Corrupt or evicted meanwhile: the general path below heals from L2 or reports the error.
            if (code !== 'CORRUPT' && code !== 'ENOENT') throw err;
          }
        }
      }
      const data = await this.readChunk(id, e, i, entries.length);
      out.set(data, offsets[i]!);
    });
    return out;
  }

  /**
   * The content as a stream. Chunks are verified before they are emitted, so the stream never carries wrong
   * bytes: it errors (BlobCorruptError naming the id) at the first bad chunk.
   */
  getStream(id: string): Readable {
    const self = this;
    async function* gen(): AsyncGenerator<Buffer> {
      self.check();
      assertBlobId(id);
      const first = await self.readBlob(id, self.row(id));
      if (first.kind === 0) {
        yield toBuffer(first.data);
        return;
      }
      const entries = core().parseManifest(first.data, id);
      const ahead = self.parallel;
      const queue: Promise<Uint8Array>[] = [];
      let next = 0;
      const fill = () => {
        while (queue.length < ahead && next < entries.length) {
          const i = next++;
          const p = self.readChunk(id, entries[i]!, i, entries.length);
          p.catch(() => {}); // observed when awaited below
          queue.push(p);
        }
      };
      fill();
      while (queue.length > 0) {
        const data = await queue.shift()!;
        fill();
        yield toBuffer(data);
      }
    }
    return Readable.from(gen(), { objectMode: false, highWaterMark: 4 * 1024 * 1024 });
  }

  /** True when the blob is stored (L1 or L2). */
  async has(id: string): Promise<boolean> {
    this.check();
    assertBlobId(id);
    const r = this.row(id);
    if (r) return r.state === OK && (r.in_l1 === 1 || r.in_l2 === 1);
    return this.s3 ? this.s3.has(id) : false;
  }

  /** Metadata of a blob. Throws BlobNotFoundError. */
  async stat(id: string): Promise<BlobStat> {
    this.check();
    assertBlobId(id);
    const r = this.row(id);
    if (!r || r.state !== OK) throw new BlobNotFoundError(id);
    const chunks = this.st('SELECT COUNT(*) AS n, COALESCE(SUM(b.stored_size), 0) AS s FROM storage_chunks c LEFT JOIN storage_blobs b ON b.id = c.chunk_id WHERE c.manifest_id = ?').get(id) as { n: number; s: number };
    const refs = (this.st('SELECT owner FROM storage_refs WHERE blob_id = ? ORDER BY owner').all(id) as { owner: string }[]).map((x) => x.owner);
    const manifest = r.kind === KIND_MANIFEST;
    return {
      id,
      size: r.size,
      storedBytes: r.stored_size + (manifest ? chunks.s : 0),
      kind: manifest ? 'chunked' : 'blob',
      codec: manifest ? 'manifest' : (r.codec as CodecName),
      chunks: chunks.n,
      inL1: r.in_l1 === 1,
      inL2: r.in_l2 === 1,
      createdAt: new Date(r.created_at),
      lastAccessAt: new Date(r.last_access_at),
      refs,
    };
  }

  /** Blobs put directly (roots) — or every blob file with `{ all: true }` — ordered by id, paged by `after`. */
  list(opts: { all?: boolean; after?: string; limit?: number } = {}): BlobListEntry[] {
    this.check();
    const rows = this.db
      .prepare(
        `SELECT id, size, kind FROM storage_blobs WHERE state = ? AND (in_l1 = 1 OR in_l2 = 1) AND id > ? ${opts.all ? '' : 'AND is_root = 1'}
         ORDER BY id LIMIT ?`,
      )
      .all(OK, opts.after ?? '', opts.limit ?? 1_000_000) as { id: string; size: number; kind: number }[];
    return rows.map((r) => ({ id: r.id, size: r.size, kind: r.kind === KIND_MANIFEST ? 'chunked' : 'blob' }));
  }

  /**
   * Deletes a blob from every tier now. Refuses (BlobInUseError) while references or manifests point at it,
   * unless `force`. Deleting a chunked blob leaves its chunks to gc (other blobs may share them).
   */
  async delete(id: string, opts: { force?: boolean } = {}): Promise<boolean> {
    this.check();
    assertBlobId(id);
    const r = await this.withReserve(() => this.deleteNow(id, opts));
    this.ensureReserve();
    return r;
  }

  private async deleteNow(id: string, opts: { force?: boolean }): Promise<boolean> {
    const owners = [
      ...(this.st('SELECT owner FROM storage_refs WHERE blob_id = ?').all(id) as { owner: string }[]).map((r) => r.owner),
      ...(this.st('SELECT DISTINCT manifest_id FROM storage_chunks WHERE chunk_id = ?').all(id) as { manifest_id: string }[]).map(
        (r) => `manifest:${r.manifest_id}`,
      ),
    ];
    if (owners.length > 0 && !opts.force) throw new BlobInUseError(id, owners);
    const marked = this.st('UPDATE storage_blobs SET state = ?, state_since = ? WHERE id = ? AND state <> ?').run(DELETING, Date.now(), id, DELETING);
    if (marked.changes === 0) return false;
    await this.removeMarked(id);
    if (opts.force) this.st('DELETE FROM storage_refs WHERE blob_id = ?').run(id);
    return true;
  }

  /** @internal Unlinks a DELETING blob from L1, removes it from L2 (or queues that), and drops its rows. */
  async removeMarked(id: string): Promise<number> {
    const row = this.row(id);
    if (!row || row.state !== DELETING) return 0;
    try {
      fs.unlinkSync(this.blobPath(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    let remoteDone = !row.in_l2 || !this.s3;
    if (!remoteDone && this.s3) {
      try {
        await this.s3.delete(id);
        remoteDone = true;
      } catch (err) {
        this.logger.warn(`${(err as Error).message}; queued for retry`);
      }
    }
    const now = Date.now();
    this.db.transaction(() => {
      this.st('DELETE FROM storage_blobs WHERE id = ? AND state = ?').run(id, DELETING);
      this.st('DELETE FROM storage_chunks WHERE manifest_id = ?').run(id);
      this.st("DELETE FROM storage_replication WHERE blob_id = ? AND op = 'put'").run(id);
      if (this.s3 && (!remoteDone || row.in_l2 === 0)) {
        // in_l2 = 0: an upload claimed before this delete may still land, so a delete is queued after it.
        this.st("INSERT OR IGNORE INTO storage_replication (blob_id, op, next_attempt_at, enqueued_at) VALUES (?, 'delete', ?, ?)")
          .run(id, now, now);
      }
    })();
    if (row.in_l1) this.l1Bytes -= row.stored_size;
    if (!remoteDone) this.replicator?.notify();
    return row.in_l1 ? row.stored_size : 0;
  }

  // ---------------------------------------------------------------- refs

  /** Records that `owner` (e.g. 'snapshot:<id>') uses blob `id`; gc never removes a referenced blob. */
  addRef(owner: string, id: string): void {
    this.check();
    assertBlobId(id);
    if (!owner) throw new StorageError('addRef: owner must be a non-empty string');
    this.db.transaction(() => {
      const r = this.st('SELECT state FROM storage_blobs WHERE id = ?').get(id) as { state: number } | undefined;
      if (!r || r.state !== OK) throw new BlobNotFoundError(id, 'put it before adding a reference to it');
      this.st('INSERT OR IGNORE INTO storage_refs (owner, blob_id, created_at) VALUES (?, ?, ?)').run(owner, id, Date.now());
    }).immediate();
  }

  /** Returns true when the reference existed. */
  removeRef(owner: string, id: string): boolean {
    this.check();
    return this.st('DELETE FROM storage_refs WHERE owner = ? AND blob_id = ?').run(owner, id).changes > 0;
  }

  /** Removes every reference of `owner`; returns how many. */
  removeRefs(owner: string): number {
    this.check();
    return this.st('DELETE FROM storage_refs WHERE owner = ?').run(owner).changes;
  }

  /** Owners referencing `id`. */
  refs(id: string): string[] {
    return (this.st('SELECT owner FROM storage_refs WHERE blob_id = ? ORDER BY owner').all(id) as { owner: string }[]).map((r) => r.owner);
  }

  // ---------------------------------------------------------------- L1 eviction

  private scheduleEvict(): void {
    if (this.l1MaxBytes !== null && this.l1Bytes > this.l1MaxBytes && !this.evicting) setImmediate(() => this.maybeEvict());
  }

  private maybeEvict(): void {
    if (this.closed || this.l1MaxBytes === null || this.evicting) return;
    if (this.l1Bytes <= this.l1MaxBytes) return;
    this.l1Bytes = this.sumL1(); // other processes may have changed it
    if (this.l1Bytes <= this.l1MaxBytes) return;
    // Evict down to 90% of the cap so eviction does not run at every put.
    this.evict(this.l1Bytes - Math.floor(this.l1MaxBytes * 0.9), false);
  }

  /**
   * Evicts least recently used blobs that are safely in L2 until `bytes` are freed. Returns bytes freed.
   * Blobs not yet replicated are never evicted, whatever the cap.
   */
  private evict(bytes: number, urgent: boolean): number {
    if (!this.s3 || bytes <= 0) return 0;
    this.evicting = true;
    let freed = 0;
    try {
      this.flushAccess();
      const pick = this.st(
        'SELECT id, stored_size FROM storage_blobs WHERE in_l1 = 1 AND in_l2 = 1 AND state = ? ORDER BY last_access_at LIMIT 256',
      );
      const mark = this.st('UPDATE storage_blobs SET in_l1 = 0 WHERE id = ? AND in_l1 = 1 AND in_l2 = 1 AND state = ?');
      while (freed < bytes) {
        const rows = pick.all(OK) as { id: string; stored_size: number }[];
        if (rows.length === 0) break;
        for (const r of rows) {
          // Row first: a reader that then misses the file reads through from L2.
          if (mark.run(r.id, OK).changes === 0) continue;
          try {
            fs.unlinkSync(this.blobPath(r.id));
          } catch {
            /* already gone */
          }
          freed += r.stored_size;
          this.l1Bytes -= r.stored_size;
          if (freed >= bytes) break;
        }
      }
      if (freed > 0 && !urgent) this.logger.info(`evicted ${freed} bytes from L1 (cap ${this.l1MaxBytes})`);
    } finally {
      this.evicting = false;
    }
    return freed;
  }

  // ---------------------------------------------------------------- replication

  private async readForUpload(id: string): Promise<Buffer | 'gone'> {
    const r = this.row(id);
    if (!r || r.state !== OK) return 'gone';
    if (r.in_l2) return 'gone';
    try {
      return await fs.promises.readFile(this.blobPath(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        const again = this.row(id);
        if (!again || again.state !== OK || again.in_l2) return 'gone';
      }
      throw err;
    }
  }

  /** Waits until the L2 queue is empty (throws after `timeoutMs` with what is pending). No-op without L2. */
  async flushReplication(timeoutMs = 60_000): Promise<void> {
    if (!this.replicator) return;
    await this.replicator.flush(timeoutMs);
  }

  /** Starts the background replication worker (started by open() unless `replication.autoStart` is false). */
  startReplication(): void {
    this.replicator?.start();
  }

  /** Bytes uploaded to L2 by this process. */
  get replicatedBytes(): number {
    return this.replicator?.bytesUploaded ?? 0;
  }

  // ---------------------------------------------------------------- gc, verify, stats

  /** Removes unreferenced blobs older than the grace period (default 1 hour). Safe against concurrent puts. */
  async gc(opts: GcOptions = {}): Promise<GcReport> {
    this.check();
    this.flushAccess();
    const r = await this.withReserve(() => runGc(this, opts));
    this.ensureReserve();
    return r;
  }

  /**
   * Re-hashes every blob in L1 and checks every manifest's chunks exist. With `repair`, corrupt L1 files are
   * moved to `<data-dir>/blobs-quarantine/` (they are re-fetched from L2 on the next read when replicated).
   */
  async verify(opts: { repair?: boolean; l2?: boolean; onProgress?: (checked: number, total: number) => void } = {}): Promise<VerifyReport> {
    this.check();
    const rows = this.st('SELECT id, kind, size, in_l1, in_l2, stored_size FROM storage_blobs WHERE state = ? ORDER BY id').all(OK) as BlobRow[];
    const report: VerifyReport = { checked: 0, bytes: 0, ok: 0, problems: [] };
    const known = new Set<string>();
    for (const r of rows) if (r.in_l1 || r.in_l2) known.add(r.id);
    await mapLimit(rows, this.parallel, async (r) => {
      let bad: VerifyProblem | null = null;
      if (r.in_l1) {
        const file = this.blobPath(r.id);
        try {
          const v = await this.pool.verifyFile(file, r.id);
          report.bytes += v.size;
          if (v.size !== r.size && v.kind === 0) bad = { id: r.id, problem: 'corrupt', detail: `decoded ${v.size} bytes, database says ${r.size}` };
        } catch (err) {
          const code = (err as CoreError).code;
          if (code === 'CORRUPT') bad = { id: r.id, problem: 'corrupt', detail: `${file}: ${(err as Error).message}` };
          else if (code === 'ENOENT') bad = r.in_l2 ? null : { id: r.id, problem: 'missing', detail: `${file} is missing and L2 has no copy` };
          else throw err;
        }
      } else if (!r.in_l2) {
        bad = { id: r.id, problem: 'missing', detail: 'in neither tier (quarantined earlier?)' };
      }
      if (!bad && r.kind === KIND_MANIFEST) {
        const chunks = this.st('SELECT seq, chunk_id FROM storage_chunks WHERE manifest_id = ? ORDER BY seq').all(r.id) as { seq: number; chunk_id: string }[];
        const missing = chunks.filter((c) => !known.has(c.chunk_id));
        if (missing.length > 0) {
          bad = { id: r.id, problem: 'missing-chunk', detail: `${missing.length} of ${chunks.length} chunks missing (first: #${missing[0]!.seq + 1} ${missing[0]!.chunk_id})` };
        }
      }
      const l2bad = opts.l2 && this.s3 && r.in_l2 ? await this.verifyL2(r, !bad && r.in_l1 === 1 && !!opts.repair) : null;
      report.checked++;
      opts.onProgress?.(report.checked, rows.length);
      if (l2bad) report.problems.push(l2bad);
      if (!bad) {
        if (!l2bad) report.ok++;
        return;
      }
      if (opts.repair && bad.problem === 'corrupt') bad.repaired = this.quarantine(r.id, r.in_l2 === 1 && !l2bad);
      report.problems.push(bad);
    });
    report.problems.sort((a, b) => a.id.localeCompare(b.id));
    return report;
  }

  /** Downloads and verifies the L2 copy; with `reupload`, a bad copy is replaced from the (good) L1 file. */
  private async verifyL2(r: BlobRow, reupload: boolean): Promise<VerifyProblem | null> {
    const where = `L2 object at ${this.s3!.where}`;
    let problem: VerifyProblem | null = null;
    try {
      const bytes = await this.s3!.get(r.id);
      if (!bytes) problem = { id: r.id, problem: 'missing', detail: `${where} is missing` };
      else core().decode(bytes, r.id);
    } catch (err) {
      if ((err as CoreError).code !== 'CORRUPT') throw err;
      problem = { id: r.id, problem: 'corrupt', detail: `${where}: ${(err as Error).message}` };
    }
    if (problem && reupload) {
      const now = Date.now();
      this.db.transaction(() => {
        this.st('UPDATE storage_blobs SET in_l2 = 0 WHERE id = ?').run(r.id);
        this.st("INSERT OR IGNORE INTO storage_replication (blob_id, op, next_attempt_at, enqueued_at) VALUES (?, 'put', ?, ?)").run(r.id, now, now);
      })();
      this.replicator?.notify();
      problem.repaired = 're-queued for upload from the verified L1 copy';
    }
    return problem;
  }

  private quarantine(id: string, inL2: boolean): string {
    const dir = path.join(this.dataDir, 'blobs-quarantine');
    fs.mkdirSync(dir, { recursive: true });
    const dest = path.join(dir, `${id}.${Date.now()}`);
    fs.renameSync(this.blobPath(id), dest);
    const r = this.row(id);
    this.st('UPDATE storage_blobs SET in_l1 = 0 WHERE id = ?').run(id);
    if (r?.in_l1) this.l1Bytes -= r.stored_size;
    return inL2 ? `moved to ${dest}; the next read re-fetches it from L2` : `moved to ${dest}; lost until the same content is put again`;
  }

  /** Counters for `faas storage stats`. */
  stats(): StorageStats {
    this.check();
    const db = this.db;
    const a = this
      .st(
        `SELECT COUNT(*) AS blobs,
           COALESCE(SUM(is_root), 0) AS objects,
           COALESCE(SUM(kind = 1), 0) AS manifests,
           COALESCE(SUM(CASE WHEN is_root = 1 THEN size ELSE 0 END), 0) AS logical,
           COALESCE(SUM(CASE WHEN kind = 0 THEN size ELSE 0 END), 0) AS uniq,
           COALESCE(SUM(stored_size), 0) AS stored,
           COALESCE(SUM(CASE WHEN kind = 0 THEN stored_size ELSE 0 END), 0) AS stored_data,
           COALESCE(SUM(CASE WHEN in_l1 = 1 THEN stored_size ELSE 0 END), 0) AS l1,
           COALESCE(SUM(CASE WHEN in_l2 = 1 THEN stored_size ELSE 0 END), 0) AS l2
         FROM storage_blobs WHERE state = ${OK} AND (in_l1 = 1 OR in_l2 = 1)`,
      )
      .get() as Record<string, number>;
    const chunks = (this.st('SELECT COUNT(DISTINCT chunk_id) AS n FROM storage_chunks').get() as { n: number }).n;
    const byCodec: StorageStats['by_codec'] = {};
    for (const r of this
      .st(`SELECT codec, kind, COUNT(*) AS n, SUM(size) AS l, SUM(stored_size) AS s FROM storage_blobs WHERE state = ${OK} GROUP BY codec, kind`)
      .all() as { codec: string; kind: number; n: number; l: number; s: number }[]) {
      byCodec[r.kind === KIND_MANIFEST ? 'manifest' : r.codec] = { blobs: r.n, logical_bytes: r.kind === KIND_MANIFEST ? 0 : r.l, stored_bytes: r.s };
    }
    const q = this.st('SELECT COUNT(*) AS n, COALESCE(SUM(attempts > 0), 0) AS f FROM storage_replication').get() as { n: number; f: number };
    const lastErr = this.st('SELECT last_error FROM storage_replication WHERE last_error IS NOT NULL ORDER BY next_attempt_at DESC LIMIT 1').get() as
      | { last_error: string }
      | undefined;
    const refs = (this.st('SELECT COUNT(*) AS n FROM storage_refs').get() as { n: number }).n;
    const round = (x: number) => Math.round(x * 1000) / 1000;
    return {
      blobs: a.blobs!,
      objects: a.objects!,
      chunks,
      manifests: a.manifests!,
      logical_bytes: a.logical!,
      unique_bytes: a.uniq!,
      stored_bytes: a.stored!,
      l1_bytes: a.l1!,
      l1_max_bytes: this.l1MaxBytes,
      l2_bytes: a.l2!,
      dedup_ratio: a.uniq! > 0 ? round(a.logical! / a.uniq!) : 1,
      compression_ratio: a.stored_data! > 0 ? round(a.uniq! / a.stored_data!) : 1,
      by_codec: byCodec,
      pending_replication: q.n,
      failing_replication: q.f,
      last_replication_error: lastErr?.last_error ?? null,
      refs,
      l2: this.s3 ? this.s3.where : null,
    };
  }

  /** Stops replication (in-flight uploads get a few seconds), stops the workers, closes the db if the store opened it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.flushAccess();
    this.closed = true;
    await this.replicator?.stop();
    await this.pool.close();
    this.s3?.close();
    if (this.ownsDb) this.db.close();
  }
}
