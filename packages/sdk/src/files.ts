/**
 * Files of a persistent sandbox (`sandbox.files`): read and write single files as bytes or text, like E2B's
 * `sandbox.files`. The calls are `client.containers.readFile/readFileText/readFileStream/writeFile`.
 */
import { FilePath, LIMITS, fileModeText } from '@faas/protocol';
import type { Containers } from './client.js';
import { ValidationError } from './errors.js';

/** A file as written (or read): its absolute path in the sandbox, size in bytes and permission bits. */
export interface FileInfo {
  path: string;
  size: number;
  /** Permission bits, e.g. `0o644`. */
  mode: number;
}

export interface FileReadOptions {
  /** Deadline of the call, reading the content included (default: the client's `timeoutMs`). */
  timeoutMs?: number;
}

export interface FileWriteOptions {
  /** Permission bits of the file (default `0o644`). */
  mode?: number;
  /** Deadline of the call (default: the client's `timeoutMs`). */
  timeoutMs?: number;
}

/** A file being read: its size and mode, and its content as it arrives (read it to the end, or cancel it). */
export interface FileStream {
  /** Bytes the stream carries. */
  size: number;
  /** Permission bits, e.g. `0o644`. */
  mode: number;
  stream: ReadableStream<Uint8Array>;
}

/** `sandbox.files`: the files API bound to one sandbox. Paths are absolute or relative to its working directory. */
export class SandboxFiles {
  constructor(
    private readonly containers: Containers,
    /** The sandbox these files belong to. */
    readonly containerId: string,
  ) {
    Object.defineProperty(this, 'containers', { enumerable: false });
  }

  /** The file's bytes. A missing file throws `NotFoundError`, a directory or symlink `ConflictError`. */
  read(path: string, options?: FileReadOptions): Promise<Uint8Array> {
    return this.containers.readFile(this.containerId, path, options);
  }
  /** The file as UTF-8 text. */
  readText(path: string, options?: FileReadOptions): Promise<string> {
    return this.containers.readFileText(this.containerId, path, options);
  }
  /** The file's content as a stream, for files too large to hold in memory. */
  readStream(path: string, options?: FileReadOptions): Promise<FileStream> {
    return this.containers.readFileStream(this.containerId, path, options);
  }
  /** Creates or replaces the file (text is written as UTF-8), making parent folders; the sandbox must be running. */
  write(path: string, data: string | Uint8Array, options?: FileWriteOptions): Promise<FileInfo> {
    return this.containers.writeFile(this.containerId, path, data, options);
  }
}

/** Checks a path before anything is sent (same rules as the gateway). */
export function checkFilePath(path: unknown): string {
  const parsed = FilePath.safeParse(path);
  if (!parsed.success) throw new ValidationError('validation_error', `invalid path: ${parsed.error.issues[0]?.message ?? 'not a path'}`, { field: 'path' });
  return parsed.data;
}

/** The bytes to write and the query text of the mode, checked before anything is sent. */
export function fileToWrite(data: unknown, options: FileWriteOptions | undefined): { bytes: Uint8Array; mode: string | undefined } {
  let bytes: Uint8Array;
  if (typeof data === 'string') bytes = Buffer.from(data, 'utf8');
  else if (data instanceof Uint8Array) bytes = data;
  else throw new ValidationError('validation_error', 'invalid data: give a string (written as UTF-8) or a Uint8Array', { field: 'data' });
  if (bytes.byteLength > LIMITS.maxFileWriteBytes) {
    throw new ValidationError(
      'payload_too_large',
      `invalid data: ${bytes.byteLength} bytes is more than the ${LIMITS.maxFileWriteBytes / 1024 / 1024} MiB a file write may carry`,
      { field: 'data' },
    );
  }
  const mode = options?.mode;
  if (mode !== undefined && (!Number.isInteger(mode) || mode < 0 || mode > 0o7777)) {
    throw new ValidationError('validation_error', 'invalid option `mode`: permission bits from 0 to 0o7777, e.g. 0o755', { field: 'mode' });
  }
  return { bytes, mode: mode === undefined ? undefined : fileModeText(mode) };
}
