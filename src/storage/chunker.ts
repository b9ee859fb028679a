/**
 * Content-defined chunking with FastCDC (Xia et al., USENIX ATC 2016): a Gear rolling hash, cut-point skipping
 * (no cut below the minimum size) and normalized chunking at level 1 (a mask one bit stricter before the average
 * size, one bit looser after it). Normalization narrows the size distribution, so a small edit rewrites a chunk of
 * about the average size; but a cut point then depends on its distance from the chunk's start, so after a change
 * the chunks can re-align late. Level 2 with a 64 KiB minimum (as first built) let a 1 MiB change in 64 MiB of
 * random data add 4 MiB or more in 2 of 150 trials; level 1 with a 16 KiB minimum (an old cut point is rarely
 * skipped) in none of 660 (see docs/storage.md).
 *
 * Pure: no I/O, no state beyond the streaming buffer of `StreamChunker` (and the scan window below). Boundaries
 * depend only on content, so an insertion or a change shifts at most the chunks that overlap it; the chunks after
 * it re-synchronise.
 */

/** Chunk size parameters in bytes. */
export interface ChunkSizes {
  min: number;
  avg: number;
  max: number;
}

/**
 * 16 KiB / 256 KiB / 1 MiB (chunks average ~280 KiB). Each chunk costs one file, one SQLite row and one S3
 * object, so a 100 MiB input making ~360 chunks keeps that overhead at a few percent of the put time, while a
 * 1 MiB change still touches only ~1 MiB + the chunks at its edges (~1.5 MiB); see docs/storage.md.
 */
export const DEFAULT_CHUNK_SIZES: ChunkSizes = Object.freeze({ min: 16 * 1024, avg: 256 * 1024, max: 1024 * 1024 });

/** 256 pseudo-random 32-bit values, fixed forever (changing them changes every chunk boundary, so every id). */
const GEAR = new Int32Array(256);
{
  // SplitMix32-style generator from a fixed seed: deterministic without shipping a 256-entry literal.
  let state = 0x9e3779b9;
  for (let i = 0; i < 256; i++) {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    GEAR[i] = (z ^ (z >>> 16)) | 0;
  }
}

/** A mask of `bits` ones in the high end of a 32-bit word: the high bits of a Gear hash depend on the most bytes. */
function highMask(bits: number): number {
  return bits >= 32 ? -1 : ((1 << bits) - 1) << (32 - bits);
}

export function validateChunkSizes(s: ChunkSizes): void {
  const pow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
  if (!pow2(s.avg) || s.min < 64 || s.min >= s.avg || s.max <= s.avg || s.max > 2 ** 30) {
    throw new Error(`invalid chunk sizes ${JSON.stringify(s)}: need 64 <= min < avg < max <= 1 GiB with avg a power of two`);
  }
}

/**
 * The Gear loop, in WebAssembly: V8's JIT ran the same loop in JavaScript at 0.8–2.4 ms/MiB here depending on
 * what it had seen before (OSR, inlining), the wasm at 0.45 ms/MiB with the window copy, and ~2.4x faster than
 * the JavaScript in every side-by-side run. Memory: GEAR at 0, GEAR << 1 at 1024, the scanned bytes from DATA on.
 *
 *   (func (export "scan") (param $i i32) (param $normalEnd i32) (param $end i32) (param $maskS i32) (param $maskL i32)
 *         (result i32) (local $h i32)
 *     ;; the same loop twice: up to $normalEnd with $maskS, then up to $end with $maskL
 *     (block (loop
 *       (br_if 1 (i32.ge_u (i32.add $i 1) $normalEnd))
 *       (local.set $h (i32.add (i32.shl $h 2) (i32.load offset=1024 (i32.shl (i32.load8_u $i) 2))))
 *       (if (i32.eqz (i32.and $h $maskS)) (return (i32.add $i 1)))
 *       (local.set $h (i32.add $h (i32.load (i32.shl (i32.load8_u offset=1 $i) 2))))
 *       (if (i32.eqz (i32.and $h $maskS)) (return (i32.add $i 2)))
 *       (local.set $i (i32.add $i 2))
 *       (br 0)))
 *     … ($end, $maskL) …
 *     (i32.const -1))   ;; no cut point before $end
 *
 * Two bytes per iteration (the FastCDC 2020 "rolling two bytes"): h = (h << 2) + 2*G[a] is checked as the first
 * step, + G[b] as the second. Every byte position is still a candidate cut point; the check after the first byte
 * sees the hash shifted left by one, which is as content-defined as the one-byte form.
 */
function gearModule(): Uint8Array<ArrayBuffer> {
  const uleb = (n: number): number[] => {
    const out: number[] = [];
    do {
      const b = n & 0x7f;
      n >>>= 7;
      out.push(n ? b | 0x80 : b);
    } while (n);
    return out;
  };
  const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
  const name = (s: string): number[] => [...uleb(s.length), ...Buffer.from(s)];
  const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
  const [I, NORMAL_END, END, MASK_S, MASK_L, H] = [0, 1, 2, 3, 4, 5];
  const I32 = 0x7f;
  const get = (x: number) => [0x20, x];
  const set = (x: number) => [0x21, x];
  const k = (n: number) => [0x41, n]; // i32.const of a small non-negative n (< 64)
  const [ADD, AND, SHL, EQZ, GE_U] = [0x6a, 0x71, 0x74, 0x45, 0x4f];
  const load = (offset: number) => [0x28, 2, ...uleb(offset)];
  const load8 = (offset: number) => [0x2d, 0, offset];
  const returnIfCut = (mask: number, step: number) => [...get(H), ...get(mask), AND, EQZ, 0x04, 0x40, ...get(I), ...k(step), ADD, 0x0f, 0x0b];
  const loop = (end: number, mask: number) => [
    ...[0x02, 0x40, 0x03, 0x40], // block, loop
    ...[...get(I), ...k(1), ADD, ...get(end), GE_U, 0x0d, 1], // br_if 1 (leave the block)
    ...[...get(H), ...k(2), SHL, ...get(I), ...load8(0), ...k(2), SHL, ...load(1024), ADD, ...set(H)],
    ...returnIfCut(mask, 1),
    ...[...get(H), ...get(I), ...load8(1), ...k(2), SHL, ...load(0), ADD, ...set(H)],
    ...returnIfCut(mask, 2),
    ...[...get(I), ...k(2), ADD, ...set(I), 0x0c, 0, 0x0b, 0x0b], // i += 2; br 0; end loop; end block
  ];
  const body = [...vec([[1, I32]]), ...loop(NORMAL_END, MASK_S), ...loop(END, MASK_L), 0x41, 0x7f /* i32.const -1 */, 0x0b];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32], [I32], [I32]]), ...vec([[I32]])]])), // type: (5 x i32) -> i32
    ...section(2, vec([[...name('m'), ...name('mem'), 0x02, 0x00, 0x01]])), // import m.mem: a memory of >= 1 page
    ...section(3, vec([[0]])), // one function of type 0
    ...section(7, vec([[...name('scan'), 0x00, 0x00]])), // export it as "scan"
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ]);
}

/** Where the scanned bytes start in the wasm memory (after the two Gear tables). */
const DATA = 2048;
const WASM_PAGE = 65536;
const memory = new WebAssembly.Memory({ initial: 1 });
const scan = new WebAssembly.Instance(new WebAssembly.Module(gearModule()), { m: { mem: memory } }).exports.scan as (
  i: number,
  normalEnd: number,
  end: number,
  maskS: number,
  maskL: number,
) => number;

/**
 * The bytes in the wasm memory are a window of one input, copied a few MiB at a time (copying each chunk's scan
 * range separately would copy every byte ~3 times). `owner` is the iteration the window belongs to: iterations
 * may interleave (two puts at once), and each recopies when it finds the window taken.
 */
let loaded: { owner: object; start: number; end: number } | null = null;
const WINDOW = 4 * 1024 * 1024;

/** `memory` at least `bytes` long (it only grows: a few MiB for the default sizes). */
function memoryView(bytes: number): Uint8Array {
  if (memory.buffer.byteLength < bytes) memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / WASM_PAGE));
  return new Uint8Array(memory.buffer);
}

{
  const tables = new Int32Array(memoryView(DATA).buffer, 0, 512);
  tables.set(GEAR);
  tables.set(GEAR.map((v) => v << 1), 256);
}

/** Bytes in several pieces, read as one run without joining them. */
export class Pieces {
  readonly length: number;
  /** Where the piece a sequential `slice` reached starts, and its index. */
  private at = 0;
  private index = 0;

  constructor(private readonly pieces: Buffer[]) {
    this.length = pieces.reduce((n, p) => n + p.length, 0);
  }

  /** Copies bytes [from, to) to `target` at `into`. */
  copyTo(target: Uint8Array, into: number, from: number, to: number): void {
    let start = 0;
    for (const p of this.pieces) {
      const end = start + p.length;
      if (end > from && start < to) {
        const a = Math.max(from, start) - start;
        const b = Math.min(to, end) - start;
        target.set(p.subarray(a, b), into);
        into += b - a;
      }
      if (end >= to) break;
      start = end;
    }
  }

  /** Bytes [from, to) as views of the pieces (no copy). Calls must move forward: each starts where one ended. */
  slice(from: number, to: number): Buffer[] {
    const out: Buffer[] = [];
    while (this.index < this.pieces.length && this.at + this.pieces[this.index]!.length <= from) this.at += this.pieces[this.index++]!.length;
    for (let i = this.index, start = this.at; i < this.pieces.length && start < to; start += this.pieces[i]!.length, i++) {
      const p = this.pieces[i]!;
      out.push(p.subarray(Math.max(from, start) - start, Math.min(to, start + p.length) - start));
    }
    return out;
  }
}

/**
 * Lengths of the chunks of `data`, in order, computed as they are consumed. With `final` false it stops where
 * fewer than `max` bytes remain (a later cut point could still depend on bytes that have not arrived).
 */
export function* chunkBoundaries(data: Uint8Array | Pieces, sizes: ChunkSizes = DEFAULT_CHUNK_SIZES, final = true): Generator<number> {
  const bits = Math.round(Math.log2(sizes.avg));
  const maskS = highMask(bits + 1);
  const maskL = highMask(bits - 1);
  const capacity = Math.max(WINDOW, sizes.max);
  const owner = {};
  let off = 0;
  while (final ? off < data.length : data.length - off >= sizes.max) {
    const remaining = data.length - off;
    const limit = Math.min(remaining, sizes.max);
    let len = limit;
    if (remaining > sizes.min) {
      const from = off + sizes.min;
      const to = off + limit;
      if (loaded?.owner !== owner || from < loaded.start || to > loaded.end) {
        loaded = { owner, start: from, end: Math.min(data.length, from + capacity) };
        const view = memoryView(DATA + capacity);
        if (data instanceof Pieces) data.copyTo(view, DATA, loaded.start, loaded.end);
        else view.set(data.subarray(loaded.start, loaded.end), DATA);
      }
      const base = DATA - loaded.start; // memory address of data[x] is base + x
      const cut = scan(base + from, base + off + Math.min(limit, sizes.avg), base + to, maskS, maskL);
      if (cut >= 0) len = cut - base - off;
    }
    yield len;
    off += len;
  }
}

/** Splits a whole buffer: returns the chunk lengths in order (their sum is `data.length`). */
export function chunkLengths(data: Uint8Array, sizes: ChunkSizes = DEFAULT_CHUNK_SIZES): number[] {
  return [...chunkBoundaries(data, sizes)];
}

/**
 * Incremental chunking of a stream: `push` pieces as they arrive and get back the chunks that are final, each as
 * views of the pieces it spans (never joined: the reader copies them once, where they go); `end()` returns the
 * rest. Produces exactly the same boundaries as `chunkLengths` over the concatenation.
 *
 * Pieces are gathered until `max` + DRAIN_EXTRA bytes wait, then cut: a chunk is final only with `max` bytes after
 * its start, so up to `max` bytes stay behind for the next round. (Joining the pieces into one buffer at each
 * round re-copied ~1 MiB per 64 KiB piece from the engine when rounds came at `max`: 2.3 ms/MiB of copying plus
 * the garbage collections it caused in a 100 MiB checkpoint.) Memory stays below `max` + DRAIN_EXTRA plus one piece.
 */
const DRAIN_EXTRA = 3 * 1024 * 1024;

export class StreamChunker {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly sizes: ChunkSizes = DEFAULT_CHUNK_SIZES) {}

  push(piece: Buffer): Buffer[][] {
    if (piece.length === 0) return [];
    this.pending.push(piece);
    this.pendingBytes += piece.length;
    if (this.pendingBytes < this.sizes.max + DRAIN_EXTRA) return [];
    return this.drain(false);
  }

  end(): Buffer[][] {
    return this.drain(true);
  }

  private drain(final: boolean): Buffer[][] {
    if (this.pendingBytes === 0) return [];
    const pieces = new Pieces(this.pending);
    const out: Buffer[][] = [];
    let off = 0;
    for (const len of chunkBoundaries(pieces, this.sizes, final)) {
      out.push(pieces.slice(off, off + len));
      off += len;
    }
    this.pending = pieces.slice(off, pieces.length);
    this.pendingBytes = pieces.length - off;
    return out;
  }
}
