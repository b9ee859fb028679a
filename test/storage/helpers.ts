import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function sha256(b: Uint8Array): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

/** Deterministic pseudo-random bytes (incompressible). */
export function prng(size: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(size);
  let off = 0;
  let counter = 0;
  while (off < size) {
    const block = crypto.createHash('sha256').update(`${seed}:${counter++}`).digest();
    // Expand cheaply: AES-CTR keyed by the block.
    const cipher = crypto.createCipheriv('aes-256-ctr', block, Buffer.alloc(16));
    const n = Math.min(size - off, 1 << 20);
    cipher.update(Buffer.alloc(n)).copy(out, off);
    off += n;
  }
  return out;
}

/** Compressible text-like bytes (source-code flavoured), deterministic. */
export function textLike(size: number, seed = 1): Buffer {
  const words = ['function', 'const', 'return', 'import', 'export', 'await', 'async', 'if', 'else', 'for', 'while', '{', '}', '(', ')', ';', '\n', '  ', 'value', 'result', 'store', 'blob', 'chunk', 'index', '=', '=>', 'data', 'null', 'true', 'false'];
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  let off = 0;
  while (off < size) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const w = words[x % words.length]!;
    off += out.write(w + (x & 16 ? ' ' : ''), off);
  }
  return out;
}

export function blobFile(dataDir: string, id: string): string {
  return path.join(dataDir, 'blobs', id.slice(0, 2), id.slice(2));
}
