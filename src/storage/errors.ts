/** Typed errors of the storage module. Every message says what failed and what to do about it. */

export class StorageError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The id is not 64 lowercase hex characters. */
export class InvalidBlobIdError extends StorageError {
  constructor(readonly id: string) {
    super(`invalid blob id "${id.length > 80 ? id.slice(0, 80) + '…' : id}": expected 64 lowercase hex characters (a SHA-256)`);
  }
}

/** No tier has the blob. */
export class BlobNotFoundError extends StorageError {
  constructor(
    readonly id: string,
    detail = '',
  ) {
    super(`blob ${id} not found${detail ? `: ${detail}` : ''}`);
  }
}

/** The stored bytes do not hash to the id, cannot be decoded, or a chunk of a chunked blob is missing. */
export class BlobCorruptError extends StorageError {
  constructor(
    readonly id: string,
    readonly reason: string,
    readonly location = '',
  ) {
    super(
      `blob ${id} is corrupt${location ? ` (${location})` : ''}: ${reason}; ` +
        'no data was returned. Restore it by putting the same content again, or run `faas storage verify --repair` ' +
        'to quarantine it (and re-fetch it from L2 when replicated)',
    );
  }
}

/** The disk holding the data dir is full (ENOSPC/EDQUOT, or SQLite reports a full database). Nothing was stored. */
export class StorageFullError extends StorageError {
  constructor(
    readonly dataDir: string,
    cause?: unknown,
  ) {
    super(
      `no space left for blobs in ${dataDir}: the put was not stored (blobs stored before are intact). ` +
        'Free space, lower FAAS_L1_MAX_BYTES with an L2 store configured so replicated blobs can be evicted, or run `faas storage gc`',
      { cause },
    );
  }
}

/** delete() of a blob that something still references. */
export class BlobInUseError extends StorageError {
  constructor(
    readonly id: string,
    readonly owners: string[],
  ) {
    super(
      `blob ${id} is still referenced by ${owners.slice(0, 5).join(', ')}${owners.length > 5 ? ` and ${owners.length - 5} more` : ''}; ` +
        'remove those references first (or delete with { force: true })',
    );
  }
}

/** The L2 (S3-compatible) store failed or timed out. */
export class RemoteStoreError extends StorageError {}

/** The store was used after close(). */
export class StoreClosedError extends StorageError {
  constructor() {
    super('the blob store is closed');
  }
}

export const BLOB_ID_RE = /^[0-9a-f]{64}$/;

export function assertBlobId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !BLOB_ID_RE.test(id)) throw new InvalidBlobIdError(String(id));
}

export function isNoSpace(err: unknown): boolean {
  const e = err as { code?: string } | null;
  return !!e && (e.code === 'ENOSPC' || e.code === 'EDQUOT' || e.code === 'SQLITE_FULL');
}
