/**
 * A container's filesystem changes against its image, as one portable tar plus a list of deleted paths, and
 * their application to another container — all through the Engine API:
 *
 * - `GET /containers/{id}/changes` lists added (1), modified (0) and deleted (2) paths. The ancestors of a change
 *   are listed as modified, and so is a path whose type changed (file, directory, symlink).
 * - Each archive request (`GET /containers/{id}/archive`) costs the engine a process (~50 ms), so few are made,
 *   one at a time (the engine holds the container's lock until an archive has been read, and does not hand it
 *   over in request order: concurrent requests can deadlock):
 *   an added path is archived whole; a modified one is "covered": its archive is read, and only its own entry
 *   (a directory's mode, owner and mtime) and the entries listed as changed are kept. Reading stops once every
 *   listed path below it has been seen; a covered directory whose unchanged content passes COVER_BUDGET_BYTES is
 *   left, and its changed children not yet seen are covered one by one instead.
 * - The kept entries (named relative to each path's parent) are merged into one tar whose names are relative to
 *   `/`, so restoring is one `PUT /containers/{id}/archive?path=/` (owners, modes with setuid/setgid bits, symlinks,
 *   hard links within one archive, mtimes to the second; the engine replaces a path whose type changed).
 * - Deleted paths are recorded apart and removed on restore, before the archive is written.
 *
 * Paths the engine or the platform manage (/.faas, /proc, /sys, /dev, /etc/hosts…, volume mounts) are left out.
 */
import { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { BLOCK, END_OF_ARCHIVE, TarReader, type TarEntry, renamedHeader } from './tar-entries.js';

export const CHANGE_MODIFIED = 0;
export const CHANGE_ADDED = 1;
export const CHANGE_DELETED = 2;

/** The engine's init: a mount point the engine makes in the container's own layer, like those of its mounts. */
const INIT_MOUNT_POINT = '/sbin/docker-init';
const ALWAYS_EXCLUDED = ['/.faas', INIT_MOUNT_POINT, '/proc', '/sys', '/dev', '/etc/hosts', '/etc/hostname', '/etc/resolv.conf', '/etc/mtab', '/run/.containerenv'];
/**
 * Unchanged bytes a covered directory's archive may cost before its changes are fetched one by one instead: about
 * what one more archive request costs.
 */
export const COVER_BUDGET_BYTES = 4 * 1024 * 1024;

export interface EngineChange {
  Path: string;
  Kind: number;
}

function isUnder(p: string, root: string): boolean {
  return p === root || p.startsWith(root === '/' ? '/' : `${root}/`);
}

function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

function* ancestorsOf(p: string): Generator<string> {
  for (let parent = parentOf(p); parent !== '/'; parent = parentOf(parent)) yield parent;
}

/** The engine's change list, indexed for capture (left-out paths dropped). */
export class ChangeIndex {
  private readonly kinds = new Map<string, number>();
  /** Listed paths present in the container (not deleted, or made again). */
  private readonly present = new Set<string>();
  private readonly children = new Map<string, string[]>();
  /** How many present listed paths an archive of each path holds, itself included. */
  private readonly listedBelow = new Map<string, number>();
  /** Ancestors of left-out paths: never archived whole. */
  private readonly holdsExcluded = new Set<string>();
  private readonly excluded: string[];
  /** Paths deleted against the image (a deleted directory's children are not listed). */
  readonly deletions: string[] = [];
  /** The topmost present changed paths: what capture starts from. */
  readonly roots: string[] = [];

  /** `mounts`: the container's mount points (left out too). */
  constructor(changes: EngineChange[], mounts: string[] = []) {
    this.excluded = [...ALWAYS_EXCLUDED, ...mounts];
    for (const root of this.excluded) for (const a of ancestorsOf(root)) this.holdsExcluded.add(a);
    const kept = this.withoutEngineMade(
      changes.filter((c) => c.Path.startsWith('/') && !this.isExcluded(c.Path)),
      [INIT_MOUNT_POINT, ...mounts],
    );
    for (const c of kept) this.kinds.set(c.Path, c.Kind);
    const hasListedChild = new Set(kept.map((c) => parentOf(c.Path)));
    for (const { Path: p, Kind: kind } of kept) {
      if (kind === CHANGE_DELETED) {
        // With listed children, a directory made again over a deleted one (as an engine diffing the upper layer
        // reports it): deleted first on restore, then archived like an added one.
        const madeAgain = hasListedChild.has(p);
        if (madeAgain || ![...ancestorsOf(p)].some((a) => this.kinds.get(a) === CHANGE_DELETED)) this.deletions.push(p);
        if (!madeAgain) continue;
      }
      this.present.add(p);
      for (const a of [p, ...ancestorsOf(p)]) this.listedBelow.set(a, (this.listedBelow.get(a) ?? 0) + 1);
      const parent = parentOf(p);
      if (!this.kinds.has(parent)) this.roots.push(p);
      else if (this.children.has(parent)) this.children.get(parent)!.push(p);
      else this.children.set(parent, [p]);
    }
    this.deletions.sort();
    this.roots.sort();
  }

  /**
   * Drops the directories listed only because the engine made a mount point in them (so a mode or owner change
   * of such a directory alone is not captured).
   */
  private withoutEngineMade(listed: EngineChange[], mountPoints: string[]): EngineChange[] {
    const holdsMountPoint = new Set(mountPoints.flatMap((m) => [...ancestorsOf(m)]));
    const holdsChanges = new Set(listed.filter((c) => !holdsMountPoint.has(c.Path)).flatMap((c) => [...ancestorsOf(c.Path)]));
    return listed.filter((c) => !holdsMountPoint.has(c.Path) || holdsChanges.has(c.Path));
  }

  private isExcluded(p: string): boolean {
    return this.excluded.some((root) => isUnder(p, root));
  }

  /** Present listed paths directly below p. */
  childrenOf(p: string): string[] {
    return this.children.get(p) ?? [];
  }

  listedCountUnder(p: string): number {
    return this.listedBelow.get(p) ?? 0;
  }

  /** Listed, and present in the container. */
  isPresent(p: string): boolean {
    return this.present.has(p);
  }

  /** Everything below an added directory (or one made again) is new. */
  private isNew(p: string): boolean {
    return this.present.has(p) && this.kinds.get(p) !== CHANGE_MODIFIED;
  }

  /** Archived whole: new, and holding nothing left out (a mount point's content). */
  wantsWhole(p: string): boolean {
    return this.isNew(p) && !this.holdsExcluded.has(p);
  }

  /** Whether an entry of a covering archive is a change to keep. */
  isChanged(p: string): boolean {
    if (this.isExcluded(p)) return false;
    if (this.kinds.has(p)) return true;
    for (const a of ancestorsOf(p)) if (this.isNew(a)) return true;
    return false;
  }
}

/**
 * A name as the engine's JSON spells it: the bytes of invalid UTF-8 sequences become U+FFFD one by one (Go's
 * rule), so an archive entry can be matched with its listed change.
 */
export function engineSpelling(binary: string): string {
  const bytes = Buffer.from(binary, 'latin1');
  const text = bytes.toString('utf8');
  if (!text.includes('\ufffd')) return text;
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    const lead = bytes[i]!;
    const n = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    const piece = bytes.subarray(i, i + n);
    const decoded = piece.toString('utf8');
    if (piece.length === n && Buffer.from(decoded).equals(piece)) {
      out += decoded;
      i += n;
    } else {
      out += '\ufffd';
      i += 1;
    }
  }
  return out;
}

/** Fetches the archive of one path of the container (its entries named relative to the path's parent). */
export type ArchiveSource = (path: string) => Promise<AsyncIterable<Buffer>>;

export interface CaptureStats {
  /** Entries in the merged archive. */
  entries: number;
  contentBytes: number;
  /** Archive requests made. */
  requests: number;
}

/** How a path's archive was read. */
interface ArchiveRead {
  /** Every change below the path was copied. */
  complete: boolean;
  /** Listed children whose entries were all read (when not complete). */
  done: Set<string>;
}

/** Merges the archives of the changed paths into one tar (names relative to `/`). */
class ChangeArchive {
  /** Names already written (a covering archive left early may have written part of a child's). */
  private readonly written = new Set<string>();

  constructor(
    private readonly index: ChangeIndex,
    private readonly fetch: ArchiveSource,
    readonly stats: CaptureStats,
  ) {}

  async *entries(): AsyncGenerator<Buffer> {
    for (const root of this.index.roots) yield* this.copy(root);
    yield END_OF_ARCHIVE;
  }

  private async *copy(p: string): AsyncGenerator<Buffer> {
    const read = yield* this.copyArchive(p);
    if (read.complete) return;
    for (const child of this.index.childrenOf(p)) if (!read.done.has(child)) yield* this.copy(child);
  }

  private async *copyArchive(p: string): AsyncGenerator<Buffer, ArchiveRead> {
    const whole = this.index.wantsWhole(p);
    // Entries below p are named relative to p's parent.
    const prefix = Buffer.from(parentOf(p) === '/' ? '' : `${parentOf(p).slice(1)}/`).toString('latin1');
    // A child the engine spells with U+FFFD cannot be asked for by name: only its parent's archive has it.
    const mayLeave = !whole && !this.index.childrenOf(p).some((c) => c.includes('\ufffd'));
    let unseen = whole ? Infinity : this.index.listedCountUnder(p);
    let unchangedBytes = 0;
    const done = new Set<string>();
    let child: string | null = null;
    this.stats.requests++;
    const tar = new TarReader(await this.fetch(p));
    try {
      for (let entry = await tar.next(); entry; entry = await tar.next()) {
        const name = prefix + entry.name.replace(/^(\.?\/)+/, '');
        const path = engineSpelling(`/${name}`.replace(/\/+$/, ''));
        const nextChild = path === p ? null : `${p}/${path.slice(p.length + 1).split('/')[0]}`;
        if (nextChild !== child) {
          if (child) done.add(child);
          child = nextChild;
        }
        if (!whole && !this.index.isChanged(path)) {
          unchangedBytes += BLOCK + entry.size;
          if (mayLeave && unchangedBytes > COVER_BUDGET_BYTES) return { complete: false, done };
          continue;
        }
        if (!this.written.has(name)) yield* this.write(tar, entry, name, prefix);
        if (this.index.isPresent(path) && --unseen === 0) break;
      }
      return { complete: true, done };
    } finally {
      await tar.close();
    }
  }

  private async *write(tar: TarReader, entry: TarEntry, name: string, prefix: string): AsyncGenerator<Buffer> {
    // Hard links name another entry of the archive; symlink targets are the link's content and stay as they are.
    const link = entry.type === '1' ? prefix + entry.link.replace(/^(\.?\/)+/, '') : entry.link;
    yield* renamedHeader(entry, name, link);
    yield* tar.body();
    this.written.add(name);
    this.stats.entries++;
    this.stats.contentBytes += entry.size;
  }
}

export interface CapturedChanges {
  /** One tar, names relative to `/`; consume it to the end, or destroy it. */
  archive: Readable;
  deletions: string[];
  /** Filled in as the archive is read. */
  stats: CaptureStats;
  /** Settles once the engine's archives have all been read: the container may change again. */
  read: Promise<void>;
}

/** Streams the changes listed in `index` as one tar, reading the container's archives through `fetch`. */
export function archiveChanges(index: ChangeIndex, fetch: ArchiveSource): CapturedChanges {
  const stats: CaptureStats = { entries: 0, contentBytes: 0, requests: 0 };
  let settle!: () => void;
  const read = new Promise<void>((resolve) => (settle = resolve));
  async function* all(): AsyncGenerator<Buffer> {
    yield* new ChangeArchive(index, fetch, stats).entries();
    settle();
  }
  // Read ahead while the consumer stores what it has (up to 256 pieces: headers, or up to 64 KiB of content each).
  // Object mode hands the pieces over as they are; a byte stream's reader gets everything buffered joined into
  // one new buffer on each read (a copy of the whole archive). Destroying the archive stops the reads too.
  const archive = Readable.from(all(), { objectMode: true, highWaterMark: 256 });
  archive.once('close', settle);
  return { archive, deletions: index.deletions, stats, read };
}

/**
 * Lists the container's changes and streams them as one tar (the container should not change meanwhile: pause
 * it first if it runs).
 */
export async function captureChanges(container: Docker.Container, info?: Docker.ContainerInspectInfo): Promise<CapturedChanges> {
  info ??= await container.inspect();
  const mounts = (info.Mounts ?? []).map((m) => m.Destination).filter((d): d is string => typeof d === 'string');
  const changes = ((await container.changes()) ?? []) as EngineChange[];
  const fetch: ArchiveSource = async (p) => (await container.getArchive({ path: p })) as unknown as AsyncIterable<Buffer>;
  return archiveChanges(new ChangeIndex(changes, mounts), fetch);
}
