/**
 * Content-defined chunking with FastCDC (Xia et al., USENIX ATC 2016): a Gear rolling hash, cut-point skipping
 * (no hashing below the minimum size) and normalized chunking (a stricter mask before the average size, a looser
 * one after it), which narrows the chunk size distribution around the average.
 *
 * Pure: no I/O, no state beyond the streaming buffer of `StreamChunker`. Boundaries depend only on content, so an
 * insertion or a change shifts at most the chunks that overlap it; the chunks after it re-synchronise.
 */

/** Chunk size parameters in bytes. */
export interface ChunkSizes {
  min: number;
  avg: number;
  max: number;
}

/**
 * 64 KiB / 256 KiB / 1 MiB. Each chunk costs one file, one SQLite row and one S3 object, so a 100 MiB input making
 * ~400 chunks keeps that overhead at a few percent of the put time, while a 1 MiB change still touches only
 * ~1 MiB + 2 x the average of new chunks (~1.5 MiB); see docs/storage.md for the measurements.
 */
export const DEFAULT_CHUNK_SIZES: ChunkSizes = Object.freeze({ min: 64 * 1024, avg: 256 * 1024, max: 1024 * 1024 });

/**
 * The chunker as one self-contained factory (no references outside its body), so the same code runs in this
 * thread and, via `chunkerCore.toString()`, in the worker that splits large puts in parallel with the rest.
 */
export function chunkerCore() {
  /** 256 pseudo-random 32-bit values, fixed forever (changing them changes every chunk boundary, so every id). */
  const GEAR = new Int32Array(256);
  // SplitMix32-style generator from a fixed seed: deterministic without shipping a 256-entry literal.
  let state = 0x9e3779b9;
  for (let i = 0; i < 256; i++) {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    GEAR[i] = (z ^ (z >>> 16)) | 0;
  }
  /** GEAR shifted left by one: lets the loop roll two bytes per iteration (the FastCDC 2020 "rolling two bytes"). */
  const GEAR_LS = GEAR.map((v) => v << 1);

  /** A mask of `bits` ones in the high end of a 32-bit word: the high bits of a Gear hash depend on the most bytes. */
  function highMask(bits: number): number {
    return bits >= 32 ? -1 : ((1 << bits) - 1) << (32 - bits);
  }

  /**
   * Length of the chunk that starts at `start` in `data[start, end)`. When fewer than `max` bytes remain and no
   * cut point is found, returns `end - start` (the caller decides whether more data may still arrive).
   */
  function cutPoint(data: Uint8Array, start: number, end: number, sizes: ChunkSizes): number {
    const remaining = end - start;
    if (remaining <= sizes.min) return remaining;
    const bits = Math.round(Math.log2(sizes.avg));
    const maskS = highMask(bits + 2);
    const maskL = highMask(bits - 2);
    const limit = Math.min(remaining, sizes.max);
    const normal = Math.min(limit, sizes.avg);
    let i = start + sizes.min;
    const normalEnd = start + normal;
    const limitEnd = start + limit;
    let h = 0;
    const g = GEAR;
    const g2 = GEAR_LS;
    // Two bytes per iteration: h = (h << 2) + 2*G[a] checked as the first step, + G[b] as the second. Every
    // byte position is still a candidate cut point; the check after the first byte sees the hash shifted left
    // by one, which is as content-defined as the one-byte form and ~30% faster in V8.
    for (; i + 1 < normalEnd; i += 2) {
      h = ((h << 2) + g2[data[i]!]!) | 0;
      if ((h & maskS) === 0) return i + 1 - start;
      h = (h + g[data[i + 1]!]!) | 0;
      if ((h & maskS) === 0) return i + 2 - start;
    }
    for (; i + 1 < limitEnd; i += 2) {
      h = ((h << 2) + g2[data[i]!]!) | 0;
      if ((h & maskL) === 0) return i + 1 - start;
      h = (h + g[data[i + 1]!]!) | 0;
      if ((h & maskL) === 0) return i + 2 - start;
    }
    return limit;
  }

  return { GEAR, cutPoint };
}

const CHUNKER = chunkerCore();

/** The Gear table (exported for tests and documentation). */
export const GEAR: Int32Array = CHUNKER.GEAR;

export function validateChunkSizes(s: ChunkSizes): void {
  const pow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
  if (!pow2(s.avg) || s.min < 64 || s.min >= s.avg || s.max <= s.avg || s.max > 2 ** 30) {
    throw new Error(`invalid chunk sizes ${JSON.stringify(s)}: need 64 <= min < avg < max <= 1 GiB with avg a power of two`);
  }
}

/**
 * Length of the chunk that starts at `start` in `data[start, end)`. When fewer than `max` bytes remain and no cut
 * point is found, returns `end - start` (the caller decides whether more data may still arrive).
 */
export function cutPoint(data: Uint8Array, start: number, end: number, sizes: ChunkSizes = DEFAULT_CHUNK_SIZES): number {
  return CHUNKER.cutPoint(data, start, end, sizes);
}

/** Splits a whole buffer: returns the chunk lengths in order (their sum is `data.length`). */
export function chunkLengths(data: Uint8Array, sizes: ChunkSizes = DEFAULT_CHUNK_SIZES): number[] {
  const out: number[] = [];
  let off = 0;
  while (off < data.length) {
    const len = cutPoint(data, off, data.length, sizes);
    out.push(len);
    off += len;
  }
  return out;
}

/**
 * Incremental chunking of a stream: `push` pieces as they arrive and get back the chunks that are final;
 * `end()` returns the rest. Produces exactly the same boundaries as `chunkLengths` over the concatenation.
 * Memory stays below `max` plus the piece being pushed.
 */
export class StreamChunker {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly sizes: ChunkSizes = DEFAULT_CHUNK_SIZES) {}

  push(piece: Buffer): Buffer[] {
    if (piece.length === 0) return [];
    this.pending.push(piece);
    this.pendingBytes += piece.length;
    if (this.pendingBytes < this.sizes.max) return [];
    return this.drain(false);
  }

  end(): Buffer[] {
    return this.drain(true);
  }

  private drain(final: boolean): Buffer[] {
    if (this.pendingBytes === 0) return [];
    const buf = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    const out: Buffer[] = [];
    let off = 0;
    // While at least `max` bytes remain, a cut point is final whatever follows.
    while (buf.length - off >= this.sizes.max || (final && off < buf.length)) {
      const len = cutPoint(buf, off, buf.length, this.sizes);
      out.push(buf.subarray(off, off + len));
      off += len;
    }
    const rest = buf.subarray(off);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes = rest.length;
    return out;
  }
}
