/**
 * Writing small ustar archives of regular files: a template's build context, the input files of an execution.
 * Parent folders are implied (the engine creates them when it extracts).
 */
import { FaasError } from '../errors.js';

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function tarHeader(name: string, size: number, mode: number, type: '0' | '5'): Buffer {
  const h = Buffer.alloc(512);
  let prefix = '';
  let base = name;
  if (Buffer.byteLength(name) > 100) {
    // ustar splits long names at a slash: prefix (155) / name (100).
    const cut = name.lastIndexOf('/', 155);
    if (cut <= 0 || Buffer.byteLength(name.slice(cut + 1)) > 100 || Buffer.byteLength(name.slice(0, cut)) > 155) {
      throw new FaasError('validation_error', `path "${name}" is too long for a tar archive (at most 100 bytes after the last "/" within the first 255)`, 'files');
    }
    prefix = name.slice(0, cut);
    base = name.slice(cut + 1);
  }
  h.write(base, 0, 100, 'utf8');
  h.write(octal(mode, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(Math.floor(Date.now() / 1000), 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(type, 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

export interface TarEntry {
  name: string;
  data: Buffer;
  mode?: number;
}

/** The pieces of a ustar archive of regular files, without the end-of-archive blocks; contents are not copied. */
function tarPieces(entries: TarEntry[]): Buffer[] {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(tarHeader(e.name, e.data.length, e.mode ?? 0o644, '0'), e.data);
    const pad = (512 - (e.data.length % 512)) % 512;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  return parts;
}

/** A ustar archive of regular files (parent folders are implied), without the end-of-archive blocks. */
export function tarBody(entries: TarEntry[]): Buffer {
  return Buffer.concat(tarPieces(entries));
}

export function tarFiles(entries: TarEntry[]): Buffer {
  return Buffer.concat([tarBody(entries), Buffer.alloc(1024)]);
}

/** The whole archive as pieces to stream, without copying the contents (large files). */
export function tarParts(entries: TarEntry[]): Buffer[] {
  return [...tarPieces(entries), Buffer.alloc(1024)];
}

