/**
 * Snapshots: a sandbox's filesystem changes against its image (see runtimes/docker/filesystem-diff.ts), stored as
 * one chunked blob in the BlobStore (so successive snapshots of a sandbox share their unchanged chunks) plus a
 * small metadata blob. The snapshot id is `snap_<id of the metadata blob>`: any gateway sharing the S3 tier can
 * fetch the metadata by id and restore the snapshot, even one that never saw it (it records it on first use).
 *
 * Every snapshot is a complete change set against its image (a sandbox restored from a snapshot carries the
 * restored files in its own layer), so restoring never walks a chain; `parent` records lineage only.
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Snapshot } from '@faas/protocol';
import type Database from 'better-sqlite3';
import { type Db, preparedStatements } from '../db/sqlite.js';
import { FaasError, errorMessage } from '../errors.js';
import type { Runtime } from '../runtimes/runtime.js';
import type { BlobStore } from '../storage/index.js';
import { nowIso } from './ids.js';

export interface SnapshotRecord {
  id: string;
  tenantId: string;
  name: string | null;
  image: string;
  imageId: string;
  parentId: string | null;
  source: string | null;
  blobId: string;
  metaBlobId: string;
  deletions: string[];
  files: number;
  sizeBytes: number;
  logicalBytes: number;
  storedBytes: number;
  createdAt: string;
}

interface Row {
  id: string;
  tenant_id: string;
  name: string | null;
  image: string;
  image_id: string;
  parent_id: string | null;
  source: string | null;
  blob_id: string;
  meta_blob_id: string;
  deletions: string;
  files: number;
  size_bytes: number;
  logical_bytes: number;
  stored_bytes: number;
  created_at: string;
  deleted: number;
}

/** What the metadata blob holds (portable between gateways). */
interface SnapshotMeta {
  v: 1;
  tenant: string;
  name: string | null;
  image: string;
  image_id: string;
  parent: string | null;
  source: string | null;
  blob_id: string;
  deletions: string[];
  files: number;
  size_bytes: number;
  logical_bytes: number;
  stored_bytes: number;
  created_at: string;
  nonce: string;
}

const SNAPSHOT_ID = /^snap_([0-9a-f]{64})$/;

function toRecord(r: Row): SnapshotRecord {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    name: r.name,
    image: r.image,
    imageId: r.image_id,
    parentId: r.parent_id,
    source: r.source,
    blobId: r.blob_id,
    metaBlobId: r.meta_blob_id,
    deletions: JSON.parse(r.deletions) as string[],
    files: r.files,
    sizeBytes: r.size_bytes,
    logicalBytes: r.logical_bytes,
    storedBytes: r.stored_bytes,
    createdAt: r.created_at,
  };
}

export function toSnapshot(r: SnapshotRecord): Snapshot {
  return {
    id: r.id,
    name: r.name,
    image: r.image,
    image_id: r.imageId,
    parent: r.parentId,
    source: r.source,
    files: r.files,
    deletions: r.deletions.length,
    size_bytes: r.sizeBytes,
    logical_bytes: r.logicalBytes,
    stored_bytes: r.storedBytes,
    created_at: r.createdAt,
  };
}

export class SnapshotService {
  private readonly stmt: (sql: string) => Database.Statement;

  constructor(
    db: Db,
    private readonly blobs: BlobStore,
    private readonly runtime: Runtime,
    /** The tenant's `snapshot_bytes` quota, if it has one. */
    private readonly bytesQuotaOf: (tenant: string) => number | undefined = () => undefined,
  ) {
    this.stmt = preparedStatements(db);
    db.exec(`
      CREATE TABLE IF NOT EXISTS snapshots (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        name TEXT,
        image TEXT NOT NULL,
        image_id TEXT NOT NULL,
        parent_id TEXT,
        source TEXT,
        blob_id TEXT NOT NULL,
        meta_blob_id TEXT NOT NULL,
        deletions TEXT NOT NULL,
        files INTEGER NOT NULL,
        size_bytes INTEGER NOT NULL,
        logical_bytes INTEGER NOT NULL,
        stored_bytes INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        internal INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS snapshots_tenant ON snapshots(tenant_id, deleted);
      CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);
      CREATE INDEX IF NOT EXISTS snapshots_source ON snapshots(source);
      CREATE TABLE IF NOT EXISTS snapshot_origins (sandbox_id TEXT PRIMARY KEY, snapshot_id TEXT NOT NULL);
    `);
  }


  /** The snapshot a finished execution left (its checkpoint, or the internal one keeping it forkable), if any. */
  ofExecution(tenant: string, executionId: string): SnapshotRecord | null {
    const row = this.stmt('SELECT * FROM snapshots WHERE source = ? AND tenant_id = ? AND deleted = 0 ORDER BY created_at DESC LIMIT 1').get(executionId, tenant) as Row | undefined;
    return row ? toRecord(row) : null;
  }

  /** Bytes the tenant's snapshots occupy in storage (what the `snapshot_bytes` quota counts). */
  storedBytesOf(tenant: string): number {
    const row = this.stmt('SELECT COALESCE(SUM(stored_bytes), 0) AS n FROM snapshots WHERE tenant_id = ? AND deleted = 0 AND internal = 0').get(tenant) as { n: number };
    return row.n;
  }

  private overQuota(tenant: string, quota: number): FaasError {
    return new FaasError(
      'forbidden',
      `this tenant's snapshots would take more than its ${quota} bytes (quota snapshot_bytes; ${this.storedBytesOf(tenant)} in use); delete snapshots it no longer needs`,
    );
  }

  /** The snapshot a sandbox was restored from (its next snapshot's parent). */
  originOf(sandboxId: string): string | null {
    return (this.stmt('SELECT snapshot_id FROM snapshot_origins WHERE sandbox_id = ?').get(sandboxId) as { snapshot_id: string } | undefined)?.snapshot_id ?? null;
  }

  setOrigin(sandboxId: string, snapshotId: string): void {
    this.stmt('INSERT OR REPLACE INTO snapshot_origins (sandbox_id, snapshot_id) VALUES (?, ?)').run(sandboxId, snapshotId);
  }

  forgetOrigin(sandboxId: string): void {
    this.stmt('DELETE FROM snapshot_origins WHERE sandbox_id = ?').run(sandboxId);
  }

  /** Captures the sandbox's changes (frozen meanwhile when it runs) and stores them. */
  async capture(
    tenant: string,
    sandboxId: string,
    opts: { name?: string | undefined; source?: string | null; image?: string | undefined; internal?: boolean; freeze?: boolean } = {},
  ): Promise<SnapshotRecord> {
    const pending = `snapshot-pending:${randomBytes(8).toString('hex')}`;
    const quota = opts.internal ? undefined : this.bytesQuotaOf(tenant);
    if (quota !== undefined && this.storedBytesOf(tenant) >= quota) throw this.overQuota(tenant, quota);
    try {
      const taken = await this.runtime.captureChanges(sandboxId, async (changes) => {
        // zstd ('auto'): measured here, lz4 ('fast') took as long and stored ~40% more (source and Python trees).
        const put = await this.blobs.put(changes.archive as Readable, { chunked: true, codec: 'auto', ref: pending });
        return { put, changes };
      }, { freeze: opts.freeze !== false });
      const { put, changes } = taken;
      // Unrecorded, the new blobs lose their only reference below and go with the next gc.
      if (quota !== undefined && this.storedBytesOf(tenant) + put.storedBytes > quota) throw this.overQuota(tenant, quota);
      const image = opts.image ?? changes.image;
      const meta: SnapshotMeta = {
        v: 1,
        tenant,
        name: opts.name ?? null,
        image,
        image_id: changes.imageId,
        parent: this.originOf(sandboxId),
        source: opts.source ?? sandboxId,
        blob_id: put.id,
        deletions: changes.deletions,
        files: changes.stats.entries + changes.deletions.length,
        size_bytes: changes.stats.contentBytes,
        logical_bytes: put.size,
        stored_bytes: put.storedBytes,
        created_at: nowIso(),
        nonce: randomBytes(8).toString('hex'),
      };
      const metaPut = await this.blobs.put(Buffer.from(JSON.stringify(meta)), { chunked: false, ref: pending });
      const id = `snap_${metaPut.id}`;
      this.record(id, metaPut.id, meta, opts.internal === true);
      return this.row(id)!;
    } catch (err) {
      if (err instanceof FaasError) throw err;
      throw new FaasError('internal_error', `taking a snapshot of sandbox ${sandboxId} failed: ${errorMessage(err)}`);
    } finally {
      this.blobs.removeRefs(pending);
    }
  }

  private record(id: string, metaBlobId: string, meta: SnapshotMeta, internal = false): void {
    this.stmt(
      `INSERT OR IGNORE INTO snapshots (id, tenant_id, name, image, image_id, parent_id, source, blob_id, meta_blob_id, deletions, files, size_bytes, logical_bytes, stored_bytes, created_at, internal)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(id, meta.tenant, meta.name, meta.image, meta.image_id, meta.parent, meta.source, meta.blob_id, metaBlobId, JSON.stringify(meta.deletions), meta.files, meta.size_bytes, meta.logical_bytes, meta.stored_bytes, meta.created_at, internal ? 1 : 0);
    this.refer(id, metaBlobId);
    this.refer(id, meta.blob_id);
  }

  /**
   * Keeps the blob from gc. A snapshot found through the S3 tier has only its metadata here until its archive is
   * read: the reference to the archive is added on restore.
   */
  private refer(id: string, blobId: string): void {
    try {
      this.blobs.addRef(`snapshot:${id}`, blobId);
    } catch {
      // not stored here (yet)
    }
  }

  private row(id: string): SnapshotRecord | null {
    const r = this.stmt('SELECT * FROM snapshots WHERE id = ? AND deleted = 0').get(id) as Row | undefined;
    return r ? toRecord(r) : null;
  }

  /**
   * The tenant's snapshot. One this gateway has not seen is looked up in storage (the S3 tier shared with other
   * gateways) by its id and recorded here.
   */
  async get(tenant: string, id: string): Promise<SnapshotRecord> {
    const local = this.stmt('SELECT * FROM snapshots WHERE id = ?').get(id) as Row | undefined;
    if (local) {
      if (local.tenant_id !== tenant) throw new FaasError('not_found', `no snapshot with id "${id}"`, 'snapshot');
      if (local.deleted) throw new FaasError('not_found', `snapshot "${id}" was deleted`, 'snapshot');
      return toRecord(local);
    }
    const m = SNAPSHOT_ID.exec(id);
    if (!m) throw new FaasError('not_found', `no snapshot with id "${id}"`, 'snapshot');
    let meta: SnapshotMeta;
    try {
      meta = JSON.parse((await this.blobs.get(m[1]!)).toString('utf8')) as SnapshotMeta;
    } catch {
      throw new FaasError('not_found', `no snapshot with id "${id}"`, 'snapshot');
    }
    if (meta.v !== 1 || meta.tenant !== tenant) throw new FaasError('not_found', `no snapshot with id "${id}"`, 'snapshot');
    this.record(id, m[1]!, meta);
    return this.row(id)!;
  }

  list(tenant: string): SnapshotRecord[] {
    return (this.stmt('SELECT * FROM snapshots WHERE tenant_id = ? AND deleted = 0 AND internal = 0 ORDER BY created_at').all(tenant) as Row[]).map(toRecord);
  }

  /**
   * Drops the internal snapshots that keep finished executions forkable once they are older than the retention
   * window (on start too, so a restart leaks nothing).
   */
  sweepInternal(olderThanMs: number, now = Date.now()): number {
    const cutoff = new Date(now - olderThanMs).toISOString();
    // Origins of sandboxes that are gone (ephemeral ones forget theirs when captured).
    this.stmt('DELETE FROM snapshot_origins WHERE sandbox_id IN (SELECT id FROM platform_sandboxes WHERE deleted = 1)').run();
    const rows = this.stmt('SELECT id FROM snapshots WHERE internal = 1 AND deleted = 0 AND created_at < ?').all(cutoff) as Array<{ id: string }>;
    for (const { id } of rows) {
      this.stmt('UPDATE snapshots SET deleted = 1 WHERE id = ?').run(id);
      try {
        this.blobs.removeRefs(`snapshot:${id}`);
      } catch {
        // closing: the next sweep has nothing left to do for it, gc finds the blobs unreferenced
      }
    }
    return rows.length;
  }

  /** Refused (409) while other snapshots name it as their parent, unless forced. */
  async delete(tenant: string, id: string, force = false): Promise<void> {
    await this.get(tenant, id);
    const children = (this.stmt('SELECT id FROM snapshots WHERE parent_id = ? AND deleted = 0').all(id) as Array<{ id: string }>).map((r) => r.id);
    if (children.length > 0 && !force) {
      throw new FaasError(
        'conflict',
        `snapshot ${id} is the parent of ${children.length} snapshot(s) (${children.slice(0, 5).join(', ')}${children.length > 5 ? ', …' : ''}); delete them first or pass force=true`,
      );
    }
    this.stmt('UPDATE snapshots SET deleted = 1 WHERE id = ?').run(id);
    this.blobs.removeRefs(`snapshot:${id}`);
  }

  /** Writes the snapshot's changes into a fresh sandbox of its image. */
  async restore(snapshot: SnapshotRecord, sandboxId: string): Promise<void> {
    try {
      await this.runtime.applyChanges(sandboxId, this.blobs.getStream(snapshot.blobId), snapshot.deletions);
    } catch (err) {
      throw new FaasError('internal_error', `restoring snapshot ${snapshot.id} into sandbox ${sandboxId} failed (the sandbox was removed): ${errorMessage(err)}`);
    }
    this.setOrigin(sandboxId, snapshot.id);
    // Only while it is still recorded: re-adding the reference of a snapshot deleted during the restore would keep
    // its blobs from gc for good.
    if (this.row(snapshot.id)) this.refer(snapshot.id, snapshot.blobId);
  }

  /**
   * The image to create a sandbox restoring `snapshot` with. A request naming another image than the snapshot's is
   * refused; the snapshot's image id is used when the engine has it, else its tag (another node's build).
   */
  async imageFor(snapshot: SnapshotRecord, requested: string | undefined): Promise<string> {
    if (requested !== undefined && requested !== snapshot.image && requested !== snapshot.imageId) {
      const requestedId = await this.runtime.imageId(requested).catch(() => null);
      if (requestedId !== snapshot.imageId) {
        throw new FaasError(
          'conflict',
          `snapshot ${snapshot.id} was taken from image "${snapshot.image}" (${snapshot.imageId.slice(0, 19)}), not "${requested}"${requestedId ? ` (${requestedId.slice(0, 19)})` : ''}; leave \`image\` out or name the snapshot's image`,
          'image',
        );
      }
    }
    const tagId = await this.runtime.imageId(snapshot.image).catch(() => null);
    if (tagId === snapshot.imageId) return snapshot.image;
    const byId = await this.runtime.imageId(snapshot.imageId).catch(() => null);
    if (byId) return snapshot.imageId;
    if (tagId) return snapshot.image;
    throw new FaasError('image_not_found', `the image of snapshot ${snapshot.id} ("${snapshot.image}", ${snapshot.imageId.slice(0, 19)}) is not in the engine`, 'image');
  }
}
