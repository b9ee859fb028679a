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
import {
  codecCore,
  type CodecCore,
  type CodecName,
  type CoreError,
  type EncodeWriteJob,
  type HashWriteJob,
  type HashWriteResult,
  type ZstdBinding,
} from './codec-core.js';

export type { CodecChoice, CodecName, HashWriteResult } from './codec-core.js';

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
function own(u) {
  // Transfer only a buffer the result owns entirely; copy otherwise (pooled or shared memory).
  if (u.byteOffset === 0 && u.byteLength === u.buffer.byteLength && !(u.buffer instanceof SharedArrayBuffer)) return u;
  return new Uint8Array(u);
}
parentPort.on('message', (m) => {
  try {
    if (m.op === 'encodeWrite' || m.op === 'hashWrite') {
      // A pooled buffer transferred to us: handed back with the reply (on error too), so it is reused.
      const buf = m.data.buffer;
      let result;
      try {
        result = m.op === 'encodeWrite' ? core.encodeWrite(m) : core.hashWrite(m);
      } catch (e) {
        parentPort.postMessage({ seq: m.seq, error: { code: e && e.code ? String(e.code) : 'ERROR', message: String(e && e.message ? e.message : e) }, buf }, [buf]);
        return;
      }
      parentPort.postMessage({ seq: m.seq, result, buf }, [buf]);
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
}

interface Slot {
  worker: Worker;
  busy: number;
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

/** The bytes of `parts` as one buffer (the part itself when there is one: no copy). */
export function joinParts(parts: readonly Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** Jobs at or below this size run in the calling thread (the smallest chunks, 16 KiB, still go to a worker). */
export const INLINE_BYTES = 16 * 1024;

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

  private spawn(): Slot {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { zstd: ZSTD_PATH, lz4: LZ4_PATH } });
    const slot: Slot = { worker, busy: 0 };
    worker.on('message', (m: { seq: number; result?: unknown; error?: { code: string; message: string }; buf?: ArrayBuffer }) => {
      if (m.buf && m.buf.byteLength === POOL_BUF && this.free.length < 32) this.free.push(m.buf);
      const p = this.pending.get(m.seq);
      if (!p) return;
      this.pending.delete(m.seq);
      slot.busy--;
      this.inflight--;
      if (this.inflight === 0) for (const s of this.slots) s.worker.unref();
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
      if (this.inflight === 0) for (const s of this.slots) s.worker.unref();
    });
    worker.unref();
    this.slots.push(slot);
    return slot;
  }

  private slot(): Slot | null {
    if (this.size === 0 || this.closed) return null;
    if (this.slots.length < this.size) return this.spawn();
    let best = this.slots[0]!;
    for (const s of this.slots) if (s.busy < best.busy) best = s;
    return best;
  }

  private call<T>(msg: Record<string, unknown>, transfer: ArrayBuffer[]): Promise<T> | null {
    const slot = this.slot();
    if (!slot) return null;
    const seq = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(seq, { resolve: resolve as (v: unknown) => void, reject, slot });
      slot.busy++;
      if (this.inflight++ === 0) for (const s of this.slots) s.worker.ref();
      slot.worker.postMessage({ ...msg, seq }, transfer);
    });
  }

  /** Chooses the codec, compresses and writes the blob file of a known id atomically. */
  async encodeWrite(job: EncodeWriteJob): Promise<{ codec: CodecName; storedSize: number }> {
    return this.offload<{ codec: CodecName; storedSize: number }>('encodeWrite', job, [job.data]) ?? core().encodeWrite(job);
  }

  /**
   * Hashes a chunk and, unless its blob file exists, compresses it into a temp file (`codecCore.hashWrite`). The
   * chunk may come in parts (views of the pieces of a stream it spans): they are copied once, where the job runs.
   */
  async hashWrite(job: Omit<HashWriteJob, 'data'> & { data: Uint8Array | readonly Uint8Array[] }): Promise<HashWriteResult> {
    const parts = job.data instanceof Uint8Array ? [job.data] : job.data;
    return this.offload<HashWriteResult>('hashWrite', job, parts) ?? core().hashWrite({ ...job, data: joinParts(parts) });
  }

  /**
   * Runs a job on its data (`parts`, in order) in a worker, or returns null when it should run inline (small, or no
   * workers). The data is copied into a buffer of its own and transferred (cloning a view would copy its whole
   * parent buffer); the worker transfers it back with the result, so steady state allocates nothing.
   */
  private offload<T>(op: string, job: object, parts: readonly Uint8Array[]): Promise<T> | null {
    const size = parts.reduce((n, p) => n + p.length, 0);
    if (size <= INLINE_BYTES || this.size === 0 || this.closed) return null;
    const copy = new Uint8Array(size <= POOL_BUF ? (this.free.pop() ?? new ArrayBuffer(POOL_BUF)) : new ArrayBuffer(size), 0, size);
    let at = 0;
    for (const p of parts) {
      copy.set(p, at);
      at += p.length;
    }
    return this.call<T>({ op, ...job, data: copy }, [copy.buffer as ArrayBuffer]);
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

  /** Like readDecode but returns only the size (and the manifest payload for manifests). */
  async verifyFile(file: string, id: string): Promise<{ kind: 0 | 1; codec: CodecName; size: number; manifest: Uint8Array | null }> {
    const p = this.call<{ kind: 0 | 1; codec: CodecName; size: number; manifest: Uint8Array | null }>({ op: 'verifyFile', file, id }, []);
    if (p) return p;
    const d = core().decodeFile(file, id);
    return { kind: d.kind, codec: d.codec, size: d.data.length, manifest: d.kind === 1 ? d.data : null };
  }

  async close(): Promise<void> {
    this.closed = true;
    const slots = this.slots;
    this.slots = [];
    await Promise.all(slots.map((s) => s.worker.terminate()));
    for (const p of this.pending.values()) p.reject(new Error('codec pool closed'));
    this.pending.clear();
  }
}
