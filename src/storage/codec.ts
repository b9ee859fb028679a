/**
 * Codec execution: the shared `codecCore` in this thread, plus a small pool of worker threads that run the same
 * core so compression, decompression and hashing use every core (zstd level 1 runs at ~300 MB/s per core here,
 * so a single thread cannot reach the put goal). Small jobs run inline: a message round trip costs more than they do.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { Worker } from 'node:worker_threads';
import { chunkerCore, type ChunkSizes } from './chunker.js';
import { codecCore, type CodecChoice, type CodecCore, type CodecName, type CoreError, type ZstdBinding } from './codec-core.js';

export type { CodecChoice, CodecName } from './codec-core.js';

const require = createRequire(import.meta.url);
const ZSTD_PATH = require.resolve('zstd-napi/binding');
const LZ4_PATH = require.resolve('lz4-napi');

let mainCore: CodecCore | null = null;
/** The core bound to this thread. */
export function core(): CodecCore {
  if (!mainCore) {
    mainCore = codecCore({
      crypto,
      zlib,
      fs,
      path,
      zstd: require(ZSTD_PATH) as ZstdBinding,
      lz4: require(LZ4_PATH) as typeof import('lz4-napi'),
    });
  }
  return mainCore;
}

const WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const core = (${codecCore.toString()})({
  crypto: require('node:crypto'), zlib: require('node:zlib'), fs: require('node:fs'), path: require('node:path'),
  zstd: require(workerData.zstd), lz4: require(workerData.lz4),
});
const chunker = (${chunkerCore.toString()})();
function own(u) {
  // Transfer only a buffer the result owns entirely; copy otherwise (pooled or shared memory).
  if (u.byteOffset === 0 && u.byteLength === u.buffer.byteLength && !(u.buffer instanceof SharedArrayBuffer)) return u;
  return new Uint8Array(u);
}
parentPort.on('message', (m) => {
  try {
    if (m.op === 'encodeWrite') {
      // Either a pooled buffer transferred to us (handed back with the reply) or a region of shared memory.
      const data = m.data || new Uint8Array(m.sab, m.offset, m.length);
      const back = m.data ? [m.data.buffer] : [];
      const buf = m.data ? m.data.buffer : undefined;
      let r;
      try {
        r = core.encode(data, m.choice, m.level);
        core.writeAtomic(m.tmp, m.final, r.parts, m.fsync);
      } catch (e) {
        parentPort.postMessage({ seq: m.seq, error: { code: e && e.code ? String(e.code) : 'ERROR', message: String(e && e.message ? e.message : e) }, buf }, back);
        return;
      }
      parentPort.postMessage({ seq: m.seq, result: { codec: r.codec, storedSize: r.storedSize }, buf }, back);
    } else if (m.op === 'split') {
      // Chunk boundaries, chunk ids and the whole-content id of shared memory, streamed back in batches.
      const data = new Uint8Array(m.sab, 0, m.length);
      const whole = require('node:crypto').createHash('sha256');
      let off = 0;
      let batch = [];
      while (off < m.length) {
        const len = chunker.cutPoint(data, off, m.length, m.sizes);
        const view = data.subarray(off, off + len);
        whole.update(view);
        batch.push(off, len, core.sha256hex(view));
        off += len;
        if (batch.length >= 24) {
          parentPort.postMessage({ seq: m.seq, partial: batch });
          batch = [];
        }
      }
      if (batch.length) parentPort.postMessage({ seq: m.seq, partial: batch });
      parentPort.postMessage({ seq: m.seq, result: { id: whole.digest('hex') } });
    } else if (m.op === 'readDecodeInto') {
      const d = core.decodeFileInto(m.file, m.id, new Uint8Array(m.sab, m.offset, m.size));
      parentPort.postMessage({ seq: m.seq, result: { kind: d.kind, codec: d.codec } });
    } else if (m.op === 'readDecode') {
      const d = core.decodeFile(m.file, m.id);
      const data = own(d.data);
      parentPort.postMessage({ seq: m.seq, result: { kind: d.kind, codec: d.codec, data } }, [data.buffer]);
    } else if (m.op === 'verifyFile') {
      const d = core.decodeFile(m.file, m.id);
      const manifest = d.kind === 1 ? own(d.data) : null;
      parentPort.postMessage({ seq: m.seq, result: { kind: d.kind, codec: d.codec, size: d.data.length, manifest } });
    } else {
      throw new Error('unknown op ' + m.op);
    }
  } catch (e) {
    parentPort.postMessage({ seq: m.seq, error: { code: e && e.code ? String(e.code) : 'ERROR', message: String(e && e.message ? e.message : e) } });
  }
});
`;

interface Pending {
  resolve(v: unknown): void;
  reject(e: unknown): void;
  /** The worker running the job. */
  slot: Slot;
  /** Streamed intermediate results (split batches). */
  onPartial?: (p: unknown) => void;
}

interface Slot {
  worker: Worker;
  busy: number;
}

export interface EncodeWriteJob {
  data: Uint8Array;
  choice: CodecChoice;
  level: number;
  tmp: string;
  final: string;
  fsync: boolean;
}

export interface DecodeResult {
  kind: 0 | 1;
  codec: CodecName;
  data: Uint8Array;
}

function coreError(e: { code: string; message: string }): CoreError {
  const err = new Error(e.message) as CoreError;
  err.code = e.code;
  return err;
}

/** Jobs at or below this size run in the calling thread. */
export const INLINE_BYTES = 64 * 1024;

/** Size of the pooled transfer buffers: the largest chunk (1 MiB by default) fits. */
const POOL_BUF = 1024 * 1024;

export class CodecPool {
  /** Transfer buffers the workers handed back: reusing them avoids a fresh allocation (page faults) per chunk. */
  private free: ArrayBuffer[] = [];
  private slots: Slot[] = [];
  private pending = new Map<number, Pending>();
  private seq = 0;
  private inflight = 0;
  private closed = false;

  /** `size` workers (default: one per core); 0 runs everything inline. */
  constructor(readonly size = Math.max(1, Math.min(4, os.availableParallelism?.() ?? os.cpus().length))) {}

  /** Starts the workers now (they load zstd/lz4 in the background) so the first big job does not wait for them. */
  warm(): void {
    if (this.size === 0 || this.closed) return;
    while (this.slots.length < this.size) this.spawn();
  }

  /** The worker that splits large puts; not used for codec jobs, so splitting never waits behind compression. */
  private splitter: Slot | null = null;

  private spawn(pooled = true): Slot {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { zstd: ZSTD_PATH, lz4: LZ4_PATH } });
    const slot: Slot = { worker, busy: 0 };
    worker.on('message', (m: { seq: number; result?: unknown; partial?: unknown; error?: { code: string; message: string }; buf?: ArrayBuffer }) => {
      if (m.buf && m.buf.byteLength === POOL_BUF && this.free.length < 32) this.free.push(m.buf);
      const p = this.pending.get(m.seq);
      if (!p) return;
      if (m.partial !== undefined) {
        p.onPartial?.(m.partial);
        return;
      }
      this.pending.delete(m.seq);
      slot.busy--;
      this.inflight--;
      if (this.inflight === 0) for (const s of this.allSlots()) s.worker.unref();
      if (m.error) p.reject(coreError(m.error));
      else p.resolve(m.result);
    });
    worker.on('error', (err) => {
      // A crashed worker fails its own jobs only; the pool replaces it on the next call.
      for (const [seq, p] of this.pending) {
        if (p.slot !== slot) continue;
        this.pending.delete(seq);
        this.inflight--;
        p.reject(err);
      }
      this.slots = this.slots.filter((s) => s !== slot);
      if (this.splitter === slot) this.splitter = null;
      if (this.inflight === 0) for (const s of this.allSlots()) s.worker.unref();
    });
    worker.unref();
    if (pooled) this.slots.push(slot);
    return slot;
  }

  private slot(): Slot | null {
    if (this.size === 0 || this.closed) return null;
    if (this.slots.length < this.size) return this.spawn();
    let best = this.slots[0]!;
    for (const s of this.slots) if (s.busy < best.busy) best = s;
    return best;
  }

  private call<T>(msg: Record<string, unknown>, transfer: ArrayBuffer[], onPartial?: (p: unknown) => void, on?: Slot): Promise<T> | null {
    const slot = on ?? this.slot();
    if (!slot) return null;
    const seq = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      const pending: Pending = { resolve: resolve as (v: unknown) => void, reject, slot };
      if (onPartial) pending.onPartial = onPartial;
      this.pending.set(seq, pending);
      slot.busy++;
      if (this.inflight++ === 0) for (const s of this.allSlots()) s.worker.ref();
      slot.worker.postMessage({ ...msg, seq }, transfer);
    });
  }

  /** Chooses the codec, compresses and writes the blob file atomically. `data` may be detached afterwards. */
  async encodeWrite(job: EncodeWriteJob): Promise<{ codec: CodecName; storedSize: number }> {
    if (job.data.length > INLINE_BYTES && this.size > 0 && !this.closed && job.data.buffer instanceof SharedArrayBuffer) {
      // Shared memory: the worker reads the region in place, nothing is copied.
      const { data, ...rest } = job;
      const p = this.call<{ codec: CodecName; storedSize: number }>(
        { op: 'encodeWrite', ...rest, sab: data.buffer, offset: data.byteOffset, length: data.length },
        [],
      );
      if (p) return p;
    }
    if (job.data.length > INLINE_BYTES && this.size > 0 && !this.closed) {
      // Copy the slice into a buffer of its own and transfer it (cloning a view would copy its whole parent
      // buffer); the worker transfers it back with the result, so steady state allocates nothing.
      let copy: Uint8Array;
      if (job.data.length <= POOL_BUF) {
        copy = new Uint8Array(this.free.pop() ?? new ArrayBuffer(POOL_BUF), 0, job.data.length);
        copy.set(job.data);
      } else {
        copy = new Uint8Array(job.data);
      }
      const p = this.call<{ codec: CodecName; storedSize: number }>({ op: 'encodeWrite', ...job, data: copy }, [copy.buffer as ArrayBuffer]);
      if (p) return p;
    }
    const c = core();
    const r = c.encode(job.data, job.choice, job.level);
    c.writeAtomic(job.tmp, job.final, r.parts, job.fsync);
    return { codec: r.codec, storedSize: r.storedSize };
  }

  /** Reads, decodes and verifies a blob file (hash against id for data blobs, checksum for manifests). */
  async readDecode(file: string, id: string, sizeHint: number): Promise<DecodeResult> {
    if (sizeHint > INLINE_BYTES) {
      const p = this.call<DecodeResult>({ op: 'readDecode', file, id }, []);
      if (p) return p;
    }
    return core().decodeFile(file, id);
  }

  /**
   * Decodes a data blob straight into `sab[offset, offset + size)` (shared with the workers: no copy back).
   * Returns false when there are no workers (the caller decodes itself).
   */
  async readDecodeInto(file: string, id: string, sab: SharedArrayBuffer, offset: number, size: number): Promise<boolean> {
    const p = this.call<{ kind: number }>({ op: 'readDecodeInto', file, id, sab, offset, size }, []);
    if (!p) return false;
    await p;
    return true;
  }

  /**
   * Splits `sab[0, length)` into chunks in a dedicated worker (so the main thread only records and dispatches),
   * reporting `(offset, length, id)` batches as they are found; resolves to the SHA-256 of the whole.
   * Returns null when there are no workers.
   */
  split(sab: SharedArrayBuffer, length: number, sizes: ChunkSizes, onChunks: (batch: (number | string)[]) => void): Promise<{ id: string }> | null {
    if (this.size === 0 || this.closed) return null;
    if (!this.splitter) {
      this.splitter = this.spawn(false);
    }
    return this.call<{ id: string }>({ op: 'split', sab, length, sizes }, [], onChunks as (p: unknown) => void, this.splitter);
  }

  /** Like readDecode but returns only the size (and the manifest payload for manifests). */
  async verifyFile(file: string, id: string): Promise<{ kind: 0 | 1; codec: CodecName; size: number; manifest: Uint8Array | null }> {
    const p = this.call<{ kind: 0 | 1; codec: CodecName; size: number; manifest: Uint8Array | null }>({ op: 'verifyFile', file, id }, []);
    if (p) return p;
    const d = core().decodeFile(file, id);
    return { kind: d.kind, codec: d.codec, size: d.data.length, manifest: d.kind === 1 ? d.data : null };
  }

  private allSlots(): Slot[] {
    return this.splitter ? [...this.slots, this.splitter] : this.slots;
  }

  async close(): Promise<void> {
    this.closed = true;
    const slots = this.allSlots();
    this.slots = [];
    this.splitter = null;
    await Promise.all(slots.map((s) => s.worker.terminate()));
    for (const p of this.pending.values()) p.reject(new Error('codec pool closed'));
    this.pending.clear();
  }
}
