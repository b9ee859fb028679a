/**
 * A container's filesystem changes against its image, as one portable tar plus a list of deleted paths, and
 * their application to another container — all through the Engine API:
 *
 * - `GET /containers/{id}/changes` lists added (1), modified (0) and deleted (2) paths;
 * - the minimal set of paths is archived (`GET /containers/{id}/archive`): an added directory's archive already
 *   holds its children, and a modified directory with changed children is covered by those children;
 * - the archives (whose entries are named relative to each path's parent) are merged into one tar whose names
 *   are relative to `/`, rewriting names with PAX headers where needed, so restoring is one
 *   `PUT /containers/{id}/archive?path=/&copyUIDGID=1` (owners, modes, symlinks, hard links, mtimes and xattrs kept);
 * - deleted paths are recorded apart and removed on restore.
 *
 * Paths the engine or the platform manage (/.faas, /proc, /sys, /dev, /etc/hosts…, volume mounts) are left out.
 */
import { PassThrough, type Readable } from 'node:stream';
import type Docker from 'dockerode';

export const CHANGE_MODIFIED = 0;
export const CHANGE_ADDED = 1;
export const CHANGE_DELETED = 2;

const ALWAYS_EXCLUDED = ['/.faas', '/sbin/docker-init', '/proc', '/sys', '/dev', '/etc/hosts', '/etc/hostname', '/etc/resolv.conf', '/etc/mtab', '/run/.containerenv'];
/**
 * Archives requested at once while capturing. Must stay 1: the engine holds the container's lock until an archive
 * has been read to the end, and does not hand it over in request order, so a second request could get it first
 * and wait for a reader that is still busy with the first: a deadlock.
 */
const ARCHIVE_CONCURRENCY = 1;

export interface ChangePlan {
  /** Paths to archive (absolute, minimal). */
  archive: string[];
  /** Paths deleted against the image (absolute, minimal: a deleted directory's children are not listed). */
  deletions: string[];
  /** Every change the engine reported (after exclusions). */
  changed: number;
}

function isUnder(p: string, root: string): boolean {
  return p === root || p.startsWith(root === '/' ? '/' : `${root}/`);
}

/** Chooses what to archive and what to delete from the engine's change list. */
export function planChanges(changes: Array<{ Path: string; Kind: number }>, excluded: string[] = []): ChangePlan {
  const skip = [...ALWAYS_EXCLUDED, ...excluded];
  const kept = changes.filter((c) => c.Path.startsWith('/') && !skip.some((root) => isUnder(c.Path, root)));
  const byPath = new Map(kept.map((c) => [c.Path, c.Kind]));
  const paths = [...byPath.keys()].sort();
  // Does any other change lie under this path?
  const hasChangedDescendant = new Set<string>();
  for (const p of paths) {
    for (let parent = parentOf(p); parent !== '/'; parent = parentOf(parent)) hasChangedDescendant.add(parent);
  }
  // Directories holding a left-out path (a mount point, /.faas, the engine's init) are never archived whole, or
  // the archive would carry what is mounted there; what changed inside them is listed (and archived) one by one.
  const blocked = new Set<string>();
  for (const root of skip) for (let parent = parentOf(root); parent !== '/'; parent = parentOf(parent)) blocked.add(parent);
  const ancestorWith = (p: string, kind: number) => {
    for (let parent = parentOf(p); parent !== '/'; parent = parentOf(parent)) if (byPath.get(parent) === kind) return true;
    return false;
  };
  const archived = new Set<string>();
  const ancestorArchived = (p: string) => {
    for (let parent = parentOf(p); parent !== '/'; parent = parentOf(parent)) if (archived.has(parent)) return true;
    return false;
  };
  const archive: string[] = [];
  const deletions: string[] = [];
  for (const p of paths) {
    const kind = byPath.get(p)!;
    if (kind === CHANGE_DELETED) {
      if (!ancestorWith(p, CHANGE_DELETED)) deletions.push(p);
      continue;
    }
    // Inside an archived directory: its archive carries this path.
    if (ancestorArchived(p)) continue;
    if (blocked.has(p)) continue;
    // A modified directory whose changes are listed below it: archiving it would copy the image's files too.
    if (kind === CHANGE_MODIFIED && hasChangedDescendant.has(p)) continue;
    archive.push(p);
    archived.add(p);
  }
  return { archive, deletions, changed: kept.length };
}

function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

// ------------------------------------------------------------------------------------------------ tar rewriting

const BLOCK = 512;

function readString(buf: Buffer, off: number, len: number): string {
  const end = buf.indexOf(0, off);
  return buf.toString('utf8', off, end === -1 || end > off + len ? off + len : end);
}

function readSize(header: Buffer): number {
  if ((header[124]! & 0x80) !== 0) {
    // base-256
    let n = 0;
    for (let i = 125; i < 136; i++) n = n * 256 + header[i]!;
    return n;
  }
  const text = readString(header, 124, 12).trim();
  return text ? parseInt(text, 8) : 0;
}

function checksum(header: Buffer): void {
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += header[i]!;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
}

function parsePax(data: Buffer): Array<[string, string]> {
  const records: Array<[string, string]> = [];
  let off = 0;
  while (off < data.length) {
    const space = data.indexOf(0x20, off);
    if (space === -1) break;
    const len = parseInt(data.toString('ascii', off, space), 10);
    if (!Number.isFinite(len) || len <= 0) break;
    const record = data.toString('utf8', space + 1, off + len - 1);
    const eq = record.indexOf('=');
    if (eq > 0) records.push([record.slice(0, eq), record.slice(eq + 1)]);
    off += len;
  }
  return records;
}

function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  const bodyLen = Buffer.byteLength(body);
  let len = bodyLen + String(bodyLen).length;
  if (String(len).length !== String(len - bodyLen).length) len = bodyLen + String(len).length;
  return Buffer.from(`${len}${body}`, 'utf8');
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function paxHeaderEntry(records: Array<[string, string]>): Buffer[] {
  const data = Buffer.concat(records.map(([k, v]) => paxRecord(k, v)));
  const header = Buffer.alloc(BLOCK);
  header.write('PaxHeader', 0, 100, 'ascii');
  header.write('0000644\0', 100, 8, 'ascii');
  header.write('0000000\0', 108, 8, 'ascii');
  header.write('0000000\0', 116, 8, 'ascii');
  header.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124, 12, 'ascii');
  header.write('00000000000\0', 136, 12, 'ascii');
  header.write('x', 156, 1, 'ascii');
  header.write('ustar\0', 257, 6, 'ascii');
  header.write('00', 263, 2, 'ascii');
  checksum(header);
  return [header, data, Buffer.alloc(padding(data.length))];
}

/** Reads exactly n bytes at a time from a stream of chunks. */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  private readonly it: AsyncIterator<Buffer>;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<boolean> {
    while (this.buffered < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else {
        this.chunks.push(r.value);
        this.buffered += r.value.length;
      }
    }
    return this.buffered >= n;
  }

  /** Exactly n bytes, or null at the end of the stream. */
  async read(n: number): Promise<Buffer | null> {
    if (!(await this.fill(n))) return null;
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }

  async drain(): Promise<void> {
    this.chunks = [];
    this.buffered = 0;
    while (!this.done) if ((await this.it.next()).done) this.done = true;
  }

  /** Passes n bytes through in pieces (large file contents are never held whole). */
  async *pieces(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.fill(1))) throw new Error('the archive ended in the middle of an entry');
      const head = this.chunks[0]!;
      if (head.length <= left) {
        this.chunks.shift();
        this.buffered -= head.length;
        left -= head.length;
        yield head;
      } else {
        this.chunks[0] = head.subarray(left);
        this.buffered -= left;
        yield head.subarray(0, left);
        left = 0;
      }
    }
  }
}

export interface RewriteStats {
  entries: number;
  contentBytes: number;
}

/**
 * Re-emits the entries of a tar whose names are relative to `parent` with names relative to `/` (no end blocks).
 */
export async function* rewriteTar(source: AsyncIterable<Buffer>, parent: string, stats: RewriteStats): AsyncGenerator<Buffer> {
  const prefix = parent === '/' ? '' : `${parent.replace(/^\/+|\/+$/g, '')}/`;
  const reader = new ByteReader(source);
  let pax: Array<[string, string]> = [];
  let gnuName: string | null = null;
  let gnuLink: string | null = null;
  for (;;) {
    const header = await reader.read(BLOCK);
    if (!header || header.every((b) => b === 0)) {
      // The end blocks and whatever follows: read to the end so the engine's connection is released.
      await reader.drain();
      return;
    }
    const type = String.fromCharCode(header[156] || 0x30);
    const size = readSize(header);
    if (type === 'x' || type === 'L' || type === 'K') {
      const data = (await reader.read(size + padding(size)))?.subarray(0, size);
      if (!data) throw new Error('the archive ended inside an extended header');
      if (type === 'x') pax = [...pax, ...parsePax(data)];
      else if (type === 'L') gnuName = readString(data, 0, data.length);
      else gnuLink = readString(data, 0, data.length);
      continue;
    }
    if (type === 'g') {
      // Global headers apply to the whole archive; none of ours should rely on them.
      await reader.read(size + padding(size));
      continue;
    }
    const ustarPrefix = header.toString('ascii', 257, 262) === 'ustar' ? readString(header, 345, 155) : '';
    const fieldName = readString(header, 0, 100);
    const name = pax.find(([k]) => k === 'path')?.[1] ?? gnuName ?? (ustarPrefix ? `${ustarPrefix}/${fieldName}` : fieldName);
    const link = pax.find(([k]) => k === 'linkpath')?.[1] ?? gnuLink ?? readString(header, 157, 100);
    const newName = prefix + name.replace(/^\.?\/+/, '');
    // Hard links name another entry of the archive; symlink targets are the link's content and stay as they are.
    const newLink = type === '1' ? prefix + link.replace(/^\.?\/+/, '') : link;
    const others = pax.filter(([k]) => k !== 'path' && k !== 'linkpath');
    const fits = (s: string) => Buffer.byteLength(s) <= 100 && /^[\x20-\x7e]*$/.test(s);
    const out = Buffer.from(header);
    out.fill(0, 0, 100);
    out.fill(0, 345, 500);
    if (others.length === 0 && fits(newName) && fits(newLink)) {
      out.write(newName, 0, 100, 'utf8');
    } else {
      const records: Array<[string, string]> = [...others, ['path', newName]];
      if (newLink) records.push(['linkpath', newLink]);
      yield* paxHeaderEntry(records);
      out.write(Buffer.from(newName).subarray(0, 100).toString('latin1'), 0, 100, 'latin1');
    }
    out.fill(0, 157, 257);
    out.write(Buffer.from(newLink).subarray(0, 100).toString('latin1'), 157, 100, 'latin1');
    checksum(out);
    yield out;
    yield* reader.pieces(size + padding(size));
    stats.entries++;
    stats.contentBytes += size;
    pax = [];
    gnuName = null;
    gnuLink = null;
  }
}

export interface CapturedChanges {
  /** One tar, names relative to `/`. */
  archive: Readable;
  deletions: string[];
  plan: ChangePlan;
  /** Filled in as the archive is read. */
  stats: RewriteStats;
}

/**
 * Lists the container's changes and streams them as one tar. The caller must consume `archive` to the end (the
 * container should not change meanwhile: pause it first if it runs).
 */
export async function captureChanges(container: Docker.Container, info?: Docker.ContainerInspectInfo): Promise<CapturedChanges> {
  info ??= await container.inspect();
  const mounts = (info.Mounts ?? []).map((m) => m.Destination).filter((d): d is string => typeof d === 'string');
  const changes = ((await container.changes()) ?? []) as Array<{ Path: string; Kind: number }>;
  const plan = planChanges(changes, mounts);
  const stats: RewriteStats = { entries: 0, contentBytes: 0 };
  const out = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
  const fetchArchive = async (p: string) => (await container.getArchive({ path: p })) as unknown as AsyncIterable<Buffer>;
  void (async () => {
    // A few archives are requested ahead while the current one is copied.
    const pending: Array<Promise<AsyncIterable<Buffer>>> = [];
    let next = 0;
    const fill = () => {
      while (pending.length < ARCHIVE_CONCURRENCY && next < plan.archive.length) {
        const p = fetchArchive(plan.archive[next++]!);
        p.catch(() => undefined);
        pending.push(p);
      }
    };
    fill();
    for (const p of plan.archive) {
      const source = await pending.shift()!;
      fill();
      for await (const piece of rewriteTar(source, parentOf(p), stats)) {
        if (!out.write(piece)) await new Promise((resolve) => out.once('drain', resolve));
      }
    }
    out.end(Buffer.alloc(BLOCK * 2));
  })().catch((err: unknown) => out.destroy(err as Error));
  return { archive: out, deletions: plan.deletions, plan, stats };
}
