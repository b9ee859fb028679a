/**
 * The blob file format and the codecs, as ONE self-contained factory: `codecCore(deps)` uses nothing but its
 * `deps` argument and JavaScript globals, so the same function runs in the main thread and, via
 * `codecCore.toString()`, in the worker threads of `CodecPool` (no separate worker file to build or locate).
 *
 * Blob file = 24-byte header + payload:
 *   0..3   magic "FAB1"
 *   4      codec: 0 none, 1 zstd, 2 lz4 (lz4-napi block format, size-prefixed)
 *   5      kind: 0 data (payload decodes to the content whose SHA-256 is the id),
 *                1 manifest (payload lists the chunks of a chunked blob, see encodeManifest)
 *   6..7   reserved, 0
 *   8..15  logical size (u64 little-endian): bytes of the decoded content
 *   16..19 CRC-32 of the payload as stored: a flipped bit that a decoder would tolerate (compressed streams
 *          have such bits) is still caught, and before any decompression is spent on it
 *   20..23 reserved, 0
 * The header makes every file and every L2 object self-describing: it can be verified and decoded without the
 * database (after losing faas.db, or when read through from a bucket another node filled).
 *
 * Manifest payload (never compressed): "FAMF" | u32 version=1 | u32 count | u32 0 | u64 total |
 * count x (32-byte chunk id | u32 length) | 32-byte SHA-256 of everything before it. The trailing checksum
 * protects the chunk list; every chunk is then verified against its own id when read, so reassembled data is
 * exactly what was put without hashing the whole again.
 */

export type CodecName = 'none' | 'zstd' | 'lz4';
/** 'auto' = sample, then zstd or none; 'fast' = sample, then lz4 or none; a codec name forces that codec. */
export type CodecChoice = 'auto' | 'fast' | CodecName;

/** The parts of zstd-napi's native binding (`zstd-napi/binding`) used here: buffers in, buffers out, no copies. */
export interface ZstdBinding {
  CCtx: new () => { compress(dst: Uint8Array, src: Uint8Array, level: number): number };
  DCtx: new () => { decompress(dst: Uint8Array, src: Uint8Array): number };
  compressBound(n: number): number;
  getFrameContentSize(frame: Uint8Array): number | null;
}

export interface CodecDeps {
  crypto: typeof import('node:crypto');
  zlib: typeof import('node:zlib');
  fs: typeof import('node:fs');
  path: typeof import('node:path');
  zstd: ZstdBinding;
  lz4: typeof import('lz4-napi');
}

export interface EncodeResult {
  codec: CodecName;
  /** Header + payload, ready to write. */
  parts: Uint8Array[];
  storedSize: number;
}

export interface DecodedBlob {
  kind: 0 | 1;
  codec: CodecName;
  /** Logical content (kind 0) or the manifest payload (kind 1). */
  data: Uint8Array;
}

/** An error thrown by the core: `code` is 'CORRUPT', 'ENOENT', 'ENOSPC', … so callers can map it to a typed error. */
export interface CoreError extends Error {
  code: string;
}

export interface EncodeWriteJob {
  data: Uint8Array;
  choice: CodecChoice;
  level: number;
  tmp: string;
  final: string;
  fsync: boolean;
}

export interface HashWriteJob {
  data: Uint8Array;
  choice: CodecChoice;
  level: number;
  blobsDir: string;
  tmpDir: string;
  /** The temp file is `<tmpDir>/<first 16 hex of the id>.<tmpName>`. */
  tmpName: string;
  fsync: boolean;
  /** False: compress without sampling first (the put's last chunks all compressed); the 5% rule still decides. */
  sample: boolean;
}

/** `tmp` null: the blob file existed, nothing was written. Otherwise the compressed blob file, not yet renamed. */
export interface HashWriteResult {
  id: string;
  tmp: string | null;
  codec: CodecName | null;
  storedSize: number;
}

export interface ManifestEntry {
  id: string;
  size: number;
}

export function codecCore(deps: CodecDeps) {
  const { crypto, zlib, fs, path, zstd, lz4 } = deps;
  const HEADER = 24;
  const MAGIC = 0x31424146; // "FAB1" little-endian
  const MF_MAGIC = 0x464d4146; // "FAMF"
  const CODECS: CodecName[] = ['none', 'zstd', 'lz4'];
  /** Below this many bytes compression cannot win enough to pay for the header and the CPU. */
  const SMALL = 512;
  /** Keep the compressed form only if it saves at least 5%; otherwise reads pay for nothing. */
  const KEEP_RATIO = 0.95;
  /** The sample must compress to 90% or better before the whole input is compressed. */
  const SAMPLE_RATIO = 0.9;
  const SAMPLE_SLICE = 4096;
  const SAMPLE_SLICES = 4;

  const cctx = new zstd.CCtx();
  const dctx = new zstd.DCtx();
  const madeDirs = new Set<string>();
  /** Reused output buffers: compressing into them avoids a fresh allocation (page faults) per chunk. */
  const scratch: { out: Buffer | null; sample: Buffer | null; read: Buffer | null } = { out: null, sample: null, read: null };
  /** Largest header size accepted before allocating: a corrupted header must not make us allocate terabytes. */
  const MAX_BLOB = 2 ** 32;

  function scratchOf(which: 'out' | 'sample' | 'read', n: number): Buffer {
    let b = scratch[which];
    if (!b || b.length < n) {
      b = Buffer.allocUnsafeSlow(Math.max(n, 64 * 1024));
      // Keep scratch buffers bounded; a huge one-off blob gets its own buffer.
      if (n <= 8 * 1024 * 1024) scratch[which] = b;
    }
    return b;
  }

  function fail(code: string, message: string): never {
    const e = new Error(message) as CoreError;
    e.code = code;
    throw e;
  }

  /** Compresses into a scratch buffer: the result is valid until the next call with the same `which`. */
  function zstdCompress(data: Uint8Array, level: number, which: 'out' | 'sample'): Uint8Array {
    const dst = scratchOf(which, zstd.compressBound(data.length));
    const n = cctx.compress(dst, data, level);
    return dst.subarray(0, n);
  }

  function asBuffer(u: Uint8Array): Buffer {
    return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
  }

  function compressWith(codec: CodecName, data: Uint8Array, level: number, which: 'out' | 'sample' = 'out'): Uint8Array {
    if (codec === 'zstd') return zstdCompress(data, level, which);
    if (codec === 'lz4') return lz4.compressSync(asBuffer(data));
    return data;
  }

  /** Compresses a few evenly spaced slices; true when they shrink enough to be worth compressing everything. */
  function sampleSaysCompress(codec: CodecName, data: Uint8Array, level: number): boolean {
    let sample: Uint8Array;
    if (data.length <= SAMPLE_SLICE * SAMPLE_SLICES * 2) {
      sample = data;
    } else {
      const parts: Uint8Array[] = [];
      const step = Math.floor((data.length - SAMPLE_SLICE) / (SAMPLE_SLICES - 1));
      for (let i = 0; i < SAMPLE_SLICES; i++) parts.push(data.subarray(i * step, i * step + SAMPLE_SLICE));
      sample = Buffer.concat(parts);
    }
    return compressWith(codec, sample, level, 'sample').length <= sample.length * SAMPLE_RATIO;
  }

  function header(codec: CodecName, kind: 0 | 1, size: number, payload: Uint8Array): Buffer {
    const h = Buffer.alloc(HEADER);
    h.writeUInt32LE(zlib.crc32(payload), 16);
    h.writeUInt32LE(MAGIC, 0);
    h[4] = CODECS.indexOf(codec);
    h[5] = kind;
    h.writeUInt32LE(size % 0x100000000, 8);
    h.writeUInt32LE(Math.floor(size / 0x100000000), 12);
    return h;
  }

  /**
   * Chooses the codec (sampling for 'auto'/'fast') and builds the file bytes for a data blob. The parts may
   * point into a scratch buffer: write them before the next encode.
   */
  function encode(data: Uint8Array, choice: CodecChoice, level: number, sample = true): EncodeResult {
    let codec: CodecName;
    if (choice === 'auto' || choice === 'fast') {
      const candidate: CodecName = choice === 'auto' ? 'zstd' : 'lz4';
      codec = data.length < SMALL || (sample && !sampleSaysCompress(candidate, data, level)) ? 'none' : candidate;
    } else {
      codec = choice;
    }
    let payload = compressWith(codec, data, level);
    if (codec !== 'none' && choice !== codec && payload.length > data.length * KEEP_RATIO) {
      codec = 'none';
      payload = data;
    }
    const h = header(codec, 0, data.length, payload);
    return { codec, parts: [h, payload], storedSize: HEADER + payload.length };
  }

  function encodeManifestFile(payload: Uint8Array, total: number): EncodeResult {
    return { codec: 'none', parts: [header('none', 1, total, payload), payload], storedSize: HEADER + payload.length };
  }

  function sha256hex(data: Uint8Array): string {
    return crypto.createHash('sha256').update(data).digest('hex');
  }

  /**
   * Parses and checks a blob file's bytes; data blobs are decompressed and hashed against `id`. With `into`
   * (exactly the logical size), the content is decoded there (e.g. shared memory of the caller's result).
   * Without it, the returned data never aliases `buf` unless `buf` is owned by the caller (`mayAlias`).
   */
  function decode(buf: Uint8Array, id: string, into?: Uint8Array, mayAlias = true): DecodedBlob {
    const b = asBuffer(buf);
    if (b.length < HEADER) fail('CORRUPT', `file is ${b.length} bytes, shorter than the ${HEADER}-byte header (truncated)`);
    if (b.readUInt32LE(0) !== MAGIC) fail('CORRUPT', 'bad magic in the header');
    const codec = CODECS[b[4]!];
    const kind = b[5]!;
    if (!codec) fail('CORRUPT', `unknown codec ${b[4]} in the header`);
    if (kind !== 0 && kind !== 1) fail('CORRUPT', `unknown kind ${kind} in the header`);
    // Every header byte is checked, so any single flipped byte anywhere in a file is detected.
    if (b[6] !== 0 || b[7] !== 0 || b.readUInt32LE(20) !== 0) fail('CORRUPT', 'reserved header bytes are not zero');
    if (kind === 1 && codec !== 'none') fail('CORRUPT', `manifest header says codec ${codec}`);
    const size = b.readUInt32LE(8) + b.readUInt32LE(12) * 0x100000000;
    const payload = b.subarray(HEADER);
    if (zlib.crc32(payload) !== b.readUInt32LE(16)) {
      fail('CORRUPT', `stored bytes fail their CRC-32 (${b.length} bytes on disk${size !== undefined ? `, ${size} logical` : ''}; bit rot or truncation)`);
    }
    if (kind === 1) {
      parseManifest(payload, id, size);
      return { kind: 1, codec, data: mayAlias ? payload : Buffer.from(payload) };
    }
    if (into && into.length !== size) fail('CORRUPT', `header says ${size} bytes, expected ${into.length}`);
    if (size > MAX_BLOB) fail('CORRUPT', `header says ${size} bytes (implausible)`);
    let data: Uint8Array;
    try {
      if (codec === 'zstd') {
        const frameSize = zstd.getFrameContentSize(payload);
        if (frameSize !== size) fail('CORRUPT', `zstd frame says ${frameSize} bytes, header says ${size}`);
        const dst = into ?? Buffer.allocUnsafe(size);
        const n = size === 0 ? 0 : dctx.decompress(dst, payload);
        if (n !== size) fail('CORRUPT', `decoded ${n} bytes, header says ${size} (truncated?)`);
        data = dst;
      } else if (codec === 'lz4') {
        const out = lz4.uncompressSync(payload);
        if (out.length !== size) fail('CORRUPT', `decoded ${out.length} bytes, header says ${size} (truncated?)`);
        if (into) {
          into.set(out);
          data = into;
        } else data = out;
      } else {
        if (payload.length !== size) fail('CORRUPT', `payload is ${payload.length} bytes, header says ${size} (truncated?)`);
        if (into) {
          into.set(payload);
          data = into;
        } else data = mayAlias ? payload : Buffer.from(payload);
      }
    } catch (err) {
      if ((err as CoreError).code === 'CORRUPT') throw err;
      fail('CORRUPT', `${codec} payload does not decompress (${(err as Error).message})`);
    }
    const actual = sha256hex(data);
    if (actual !== id) fail('CORRUPT', `content hashes to ${actual}`);
    return { kind: 0, codec, data };
  }

  function encodeManifest(entries: ManifestEntry[], total: number): Buffer {
    const n = entries.length;
    const buf = Buffer.alloc(24 + n * 36 + 32);
    buf.writeUInt32LE(MF_MAGIC, 0);
    buf.writeUInt32LE(1, 4);
    buf.writeUInt32LE(n, 8);
    buf.writeUInt32LE(0, 12);
    buf.writeUInt32LE(total % 0x100000000, 16);
    buf.writeUInt32LE(Math.floor(total / 0x100000000), 20);
    let off = 24;
    for (const e of entries) {
      buf.write(e.id, off, 'hex');
      buf.writeUInt32LE(e.size, off + 32);
      off += 36;
    }
    crypto.createHash('sha256').update(buf.subarray(0, off)).digest().copy(buf, off);
    return buf;
  }

  function parseManifest(payload: Uint8Array, id: string, expectTotal?: number): ManifestEntry[] {
    const b = asBuffer(payload);
    if (b.length < 56) fail('CORRUPT', `manifest is ${b.length} bytes (truncated)`);
    if (b.readUInt32LE(0) !== MF_MAGIC || b.readUInt32LE(4) !== 1) fail('CORRUPT', 'bad manifest magic or version');
    const n = b.readUInt32LE(8);
    if (b.length !== 24 + n * 36 + 32) fail('CORRUPT', `manifest of ${n} chunks has ${b.length} bytes (truncated or padded)`);
    const body = b.subarray(0, b.length - 32);
    const sum = crypto.createHash('sha256').update(body).digest();
    if (!sum.equals(b.subarray(b.length - 32))) fail('CORRUPT', 'manifest checksum mismatch');
    const total = b.readUInt32LE(16) + b.readUInt32LE(20) * 0x100000000;
    if (expectTotal !== undefined && total !== expectTotal) fail('CORRUPT', `manifest total ${total} != header size ${expectTotal}`);
    const entries: ManifestEntry[] = [];
    let sumSizes = 0;
    for (let i = 0, off = 24; i < n; i++, off += 36) {
      const size = b.readUInt32LE(off + 32);
      entries.push({ id: b.toString('hex', off, off + 32), size });
      sumSizes += size;
    }
    if (sumSizes !== total) fail('CORRUPT', `manifest chunk sizes sum to ${sumSizes}, expected ${total}`);
    if (n === 1 && entries[0]!.id === id) fail('CORRUPT', 'manifest refers to itself');
    return entries;
  }

  function ensureDir(dir: string): void {
    if (madeDirs.has(dir)) return;
    fs.mkdirSync(dir, { recursive: true });
    madeDirs.add(dir);
  }

  /** Runs `fn`; if it throws, removes `tmp` (whatever state it is in) and rethrows. */
  function orUnlink<T>(tmp: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      try {
        fs.unlinkSync(tmp);
      } catch {
        /* already gone */
      }
      throw err;
    }
  }

  /** Writes parts to the new file `tmp` with one handle (fsynced when asked); no file is left on failure. */
  function writeTmp(tmp: string, parts: Uint8Array[], fsync: boolean): void {
    ensureDir(path.dirname(tmp));
    let fd: number;
    try {
      fd = fs.openSync(tmp, 'wx', 0o644);
    } catch (err) {
      if ((err as CoreError).code !== 'ENOENT') throw err;
      // The directory vanished under us (removed by hand, or a data dir recreated): make it again, once.
      madeDirs.clear();
      ensureDir(path.dirname(tmp));
      fd = fs.openSync(tmp, 'wx', 0o644);
    }
    orUnlink(tmp, () => {
      try {
        // One writev for header + payload; finish piecewise if the kernel wrote less.
        let done = parts.length > 1 ? fs.writevSync(fd, parts) : 0;
        for (const p of parts) {
          const skip = Math.min(done, p.length);
          done -= skip;
          let off = skip;
          while (off < p.length) off += fs.writeSync(fd, p, off, p.length - off);
        }
        if (fsync) fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    });
  }

  /**
   * Renames a complete temp file onto `final`: readers see either no file or the whole file, and two writers of
   * the same id both rename complete, identical files. The temp file is removed on failure.
   */
  function commitTmp(tmp: string, final: string): void {
    orUnlink(tmp, () => {
      ensureDir(path.dirname(final));
      try {
        fs.renameSync(tmp, final);
      } catch (err) {
        if ((err as CoreError).code !== 'ENOENT' || !fs.existsSync(tmp)) throw err;
        madeDirs.clear();
        ensureDir(path.dirname(final));
        fs.renameSync(tmp, final);
      }
    });
  }

  /** A blob file written in one step: temp file, then rename. */
  function writeAtomic(tmp: string, final: string, parts: Uint8Array[], fsync: boolean): void {
    writeTmp(tmp, parts, fsync);
    commitTmp(tmp, final);
  }

  /** `<blobsDir>/ab/cdef…`: the file of blob `abcdef…`. */
  function blobFile(blobsDir: string, id: string): string {
    return path.join(blobsDir, id.slice(0, 2), id.slice(2));
  }

  /** A temp file for blob `id` (named by its start, for whoever looks in the folder), renamed into place later. */
  function tmpFile(tmpDir: string, id: string, name: string): string {
    return path.join(tmpDir, `${id.slice(0, 16)}.${name}`);
  }

  /** Chooses the codec, compresses and writes the blob file of a known id atomically. */
  function encodeWrite(job: EncodeWriteJob): { codec: CodecName; storedSize: number } {
    const r = encode(job.data, job.choice, job.level);
    writeAtomic(job.tmp, job.final, r.parts, job.fsync);
    return { codec: r.codec, storedSize: r.storedSize };
  }

  /**
   * A chunk of a chunked put: hashes it and, unless its blob file exists already (a dedup hit, which the caller
   * confirms in SQLite), compresses it into a temp file that the caller renames into place once it has claimed
   * the id. Hashing here rather than in the splitting thread spreads the hashing over the workers.
   */
  function hashWrite(job: HashWriteJob): HashWriteResult {
    const id = sha256hex(job.data);
    if (fs.existsSync(blobFile(job.blobsDir, id))) return { id, tmp: null, codec: null, storedSize: 0 };
    const r = encode(job.data, job.choice, job.level, job.sample);
    const tmp = tmpFile(job.tmpDir, id, job.tmpName);
    writeTmp(tmp, r.parts, job.fsync);
    return { id, tmp, codec: r.codec, storedSize: r.storedSize };
  }

  function readFile(file: string): Buffer {
    return fs.readFileSync(file);
  }

  /** Reads a whole file into the read scratch buffer (valid until the next call). */
  function readScratch(file: string): Buffer {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const buf = scratchOf('read', size).subarray(0, size);
      let off = 0;
      while (off < size) {
        const n = fs.readSync(fd, buf, off, size - off, off);
        if (n === 0) break;
        off += n;
      }
      return buf.subarray(0, off);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Reads, decodes and verifies a blob file. The result is the caller's own memory. */
  function decodeFile(file: string, id: string): DecodedBlob {
    return decode(readScratch(file), id, undefined, false);
  }

  /** Reads, decodes and verifies a data blob file straight into `into` (exactly its logical size). */
  function decodeFileInto(file: string, id: string, into: Uint8Array): DecodedBlob {
    const d = decode(readScratch(file), id, into, false);
    if (d.kind !== 0) fail('CORRUPT', 'expected a data blob, found a manifest');
    return d;
  }

  return {
    HEADER,
    encode,
    encodeManifestFile,
    decode,
    decodeFile,
    decodeFileInto,
    encodeManifest,
    parseManifest,
    writeAtomic,
    commitTmp,
    blobFile,
    tmpFile,
    encodeWrite,
    hashWrite,
    sha256hex,
    readFile,
  };
}

export type CodecCore = ReturnType<typeof codecCore>;
