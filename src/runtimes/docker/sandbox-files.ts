/**
 * Single files in and out of a sandbox through the engine's archive API (`HEAD`, `GET` and `PUT
 * /containers/{id}/archive`), which serves stopped containers too and needs nothing inside the sandbox.
 *
 * The engine holds the container's lock until an archive it serves has been read to its end or its connection
 * closed: while a file streams out, every other engine call on that sandbox (inspect, stop, pause, other archives)
 * waits. So a read whose consumer takes nothing for `stallMs` is abandoned, and the runtime cuts the reads under
 * way before it stops, resumes or removes the sandbox.
 *
 * The engine's archives cannot see tmpfs mounts (they live in the container's mount namespace only) and refuse
 * to write into a read-only root filesystem.
 */
import { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { FaasError, errorMessage } from '../../errors.js';
import type { SandboxFileRead, SandboxPathStat } from '../runtime.js';
import { engineError, isNotFound } from './engine-errors.js';
import { type TarEntry, TarReader } from './tar-entries.js';

/** How long a file being read may wait for its consumer to take more before the read is abandoned. */
export const FILE_READ_STALL_MS = 30_000;

/** Bits of Go's os.FileMode, as the engine's path stat (`X-Docker-Container-Path-Stat`) carries them. */
const GO_MODE = {
  dir: 2 ** 31,
  symlink: 2 ** 27,
  device: 2 ** 26,
  pipe: 2 ** 25,
  socket: 2 ** 24,
  setuid: 2 ** 23,
  setgid: 2 ** 22,
  charDevice: 2 ** 21,
  sticky: 2 ** 20,
} as const;

const has = (mode: number, bit: number): boolean => Math.floor(mode / bit) % 2 === 1;

/** Permission bits (with setuid, setgid and sticky as 04000, 02000, 01000) of a Go file mode. */
function permissionsOf(goMode: number): number {
  return (goMode % 0o1000) | (has(goMode, GO_MODE.setuid) ? 0o4000 : 0) | (has(goMode, GO_MODE.setgid) ? 0o2000 : 0) | (has(goMode, GO_MODE.sticky) ? 0o1000 : 0);
}

/** The engine's own message, without dockerode's `(HTTP code N) …  - ` prefix. */
function reasonOf(err: unknown): string {
  return errorMessage(err)
    .replace(/^\(HTTP code \d+\)\s*[^-]*-\s*/, '')
    .replace(/^Error processing tar file\(exit status \d+\):\s*/i, '')
    .trim();
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number }).statusCode;
}

/**
 * Folders the engine's archives do not reach (kernel and engine mounts: proc, sysfs, the /dev tmpfs) or that belong
 * to the platform (the agent and its socket): a path in them is refused rather than answered from what lies under
 * the mount.
 */
const PLATFORM_DIR = '/.faas';
const UNREACHABLE = ['/proc', '/sys', '/dev', PLATFORM_DIR];

function checkReachable(path: string): void {
  const root = UNREACHABLE.find((r) => path === r || path.startsWith(`${r}/`));
  if (root) {
    const why = root === PLATFORM_DIR ? 'holds the platform\'s agent and its socket' : 'is a kernel or engine mount the archive API does not see into';
    throw new FaasError('validation_error', `path ${path}: ${root} ${why}; use an exec for it`, 'path');
  }
}

function gone(sandbox: string): FaasError {
  return new FaasError('not_found', `sandbox ${sandbox} no longer exists in the engine`);
}

export async function statPath(container: Docker.Container, path: string, where: string, sandbox: string): Promise<SandboxPathStat> {
  checkReachable(path);
  let stat: { size?: number; mode?: number; linkTarget?: string };
  try {
    const res = (await container.infoArchive({ path })) as unknown as Readable & { headers: Record<string, string | undefined> };
    res.destroy();
    stat = JSON.parse(Buffer.from(res.headers['x-docker-container-path-stat'] ?? '', 'base64').toString('utf8') || '{}');
  } catch (err) {
    // A HEAD answer has no body, so a missing file cannot be told from a missing container here (the write that
    // follows tells), nor a path through a file from another failure.
    if (isNotFound(err)) return { type: 'missing' };
    if (statusOf(err) === 500) return { type: 'unknown' };
    throw engineError(err, where, `looking at ${path} in sandbox ${sandbox}`);
  }
  const mode = stat.mode ?? 0;
  if (has(mode, GO_MODE.dir)) return { type: 'directory', mode: permissionsOf(mode) };
  if (has(mode, GO_MODE.symlink)) return { type: 'symlink', target: stat.linkTarget ?? '' };
  if (has(mode, GO_MODE.pipe)) return { type: 'other', kind: 'named pipe' };
  if (has(mode, GO_MODE.socket)) return { type: 'other', kind: 'socket' };
  if (has(mode, GO_MODE.device)) return { type: 'other', kind: has(mode, GO_MODE.charDevice) ? 'character device' : 'block device' };
  return { type: 'file', size: stat.size ?? 0, mode: permissionsOf(mode) };
}

const OTHER_KINDS: Record<string, string> = { '1': 'hard link', '3': 'character device', '4': 'block device', '6': 'named pipe' };

function describe(entry: TarEntry): Exclude<SandboxPathStat, { type: 'file' }> {
  if (entry.type === '5') return { type: 'directory', mode: headerMode(entry.header) };
  if (entry.type === '2') return { type: 'symlink', target: Buffer.from(entry.link, 'latin1').toString('utf8') };
  return { type: 'other', kind: OTHER_KINDS[entry.type] ?? `tar entry of type ${JSON.stringify(entry.type)}` };
}

function headerMode(header: Buffer): number {
  const text = header.toString('ascii', 100, 108).replace(/\0.*$/s, '').trim();
  return (parseInt(text || '0', 8) || 0) & 0o7777;
}

export interface ReadFileOptions {
  where: string;
  sandbox: string;
  stallMs: number;
  /** Told how to cut the read (stop, resume and remove do); returns the function that forgets it. */
  track(abort: (why: string) => void): () => void;
}

/**
 * The file at `path`, or what is there instead. Only a regular file's archive is read past its first header; a
 * directory's is dropped at once.
 */
export async function readFile(container: Docker.Container, path: string, opts: ReadFileOptions): Promise<SandboxFileRead> {
  checkReachable(path);
  let archive: Readable;
  try {
    archive = (await container.getArchive({ path })) as unknown as Readable;
  } catch (err) {
    const reason = reasonOf(err);
    if (isNotFound(err)) {
      if (/no such container/i.test(reason)) throw gone(opts.sandbox);
      return { type: 'missing' };
    }
    if (/not a directory/i.test(reason)) return { type: 'missing', reason: 'a folder on the way is a file' };
    throw engineError(err, opts.where, `reading ${path} in sandbox ${opts.sandbox}`);
  }
  const reader = new TarReader(archive);
  let entry: TarEntry | null;
  try {
    entry = await reader.next();
  } catch (err) {
    await reader.close().catch(() => undefined);
    throw engineError(err, opts.where, `reading ${path} in sandbox ${opts.sandbox}`);
  }
  if (!entry) return { type: 'missing' };
  if (entry.type !== '0' && entry.type !== '7') {
    await reader.close();
    return describe(entry);
  }
  return { type: 'file', size: entry.size, mode: headerMode(entry.header), content: contentOf(reader, archive, entry.size, path, opts) };
}

/** The entry's content, exactly `size` bytes, pulled from the engine only as fast as the consumer takes it. */
function contentOf(reader: TarReader, archive: Readable, size: number, path: string, opts: ReadFileOptions): Readable {
  /** Since when a piece has waited for the consumer (null while the engine is being waited for). */
  let waitingSince: number | null = Date.now();
  async function* pieces(): AsyncGenerator<Buffer> {
    waitingSince = null;
    let left = size;
    try {
      for await (const piece of reader.body()) {
        if (left === 0) continue; // the padding after the content
        const part = piece.length > left ? piece.subarray(0, left) : piece;
        left -= part.length;
        waitingSince = Date.now();
        yield part;
        waitingSince = null;
      }
      // The end blocks: read, so the engine's connection (and its lock on the sandbox) is released at once.
      await reader.next();
    } finally {
      await reader.close();
    }
  }
  const content = Readable.from(pieces(), { objectMode: false, highWaterMark: 256 * 1024 });
  // Cutting a read must never crash for want of a listener; consumers that pipe get the error all the same.
  content.on('error', () => undefined);
  const abort = (why: string) => {
    archive.destroy();
    content.destroy(new Error(why));
  };
  const untrack = opts.track(abort);
  const check = setInterval(
    () => {
      if (waitingSince !== null && Date.now() - waitingSince > opts.stallMs) {
        abort(`the reader of ${path} in sandbox ${opts.sandbox} took nothing for ${opts.stallMs} ms; the read was abandoned (the engine holds the sandbox while it lasts)`);
      }
    },
    Math.max(10, Math.min(1000, opts.stallMs / 4)),
  );
  check.unref();
  content.once('close', () => {
    clearInterval(check);
    untrack();
    // Destroyed before it was read from (a HEAD, a client gone at once), the generator never ran its `finally`.
    if (!archive.readableEnded) archive.destroy();
  });
  return content;
}

/** Extracts the archive at `/` of the container; what the caller can fix is a 409 with the engine's reason. */
export async function writeFiles(container: Docker.Container, archive: NodeJS.ReadableStream, where: string, sandbox: string): Promise<void> {
  try {
    await container.putArchive(archive, { path: '/' });
  } catch (err) {
    const reason = reasonOf(err);
    if (isNotFound(err)) throw gone(sandbox);
    if (/not a directory|read-only file system|marked read-only|is a directory|permission denied|no space left|resource busy/i.test(reason)) {
      throw new FaasError('conflict', `the engine could not write into sandbox ${sandbox}: ${reason}`);
    }
    throw engineError(err, where, `writing files into sandbox ${sandbox}`);
  }
}
