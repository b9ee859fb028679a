/** The storage module's tables in the shared `<data-dir>/faas.db`. `migrateStorage` is idempotent. */
import type { Db } from '../db/sqlite.js';

/** Row states of storage_blobs. A row is inserted as WRITING before its file is written (claims the id). */
export const WRITING = 0;
export const OK = 1;
/** Set by gc/delete before unlinking; puts of the same id wait until the row is gone. */
export const DELETING = 2;

/** Owner prefix of the references that pin chunks while their manifest is being written. */
export const TRANSIENT_PREFIX = 'put-in-progress:';

export const KIND_DATA = 0;
export const KIND_MANIFEST = 1;

export function migrateStorage(db: Db): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS storage_blobs (
      id             TEXT PRIMARY KEY,       -- SHA-256 hex of the logical content
      kind           INTEGER NOT NULL,       -- 0 data blob, 1 manifest of a chunked blob
      state          INTEGER NOT NULL,       -- 0 writing, 1 ok, 2 deleting
      size           INTEGER NOT NULL,       -- logical bytes
      stored_size    INTEGER NOT NULL,       -- bytes of the blob file / L2 object (header + payload)
      codec          TEXT NOT NULL,          -- none | zstd | lz4 (also in the file header)
      is_root        INTEGER NOT NULL DEFAULT 0, -- 1 when put directly (not only as a chunk)
      in_l1          INTEGER NOT NULL DEFAULT 0,
      in_l2          INTEGER NOT NULL DEFAULT 0,
      created_at     INTEGER NOT NULL,
      last_put_at    INTEGER NOT NULL,       -- refreshed by every put that hits it: the GC grace clock
      last_access_at INTEGER NOT NULL,       -- the L1 LRU clock
      state_since    INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS storage_blobs_lru ON storage_blobs (in_l1, last_access_at);
    CREATE INDEX IF NOT EXISTS storage_blobs_gc ON storage_blobs (state, last_put_at);

    CREATE TABLE IF NOT EXISTS storage_chunks (
      manifest_id TEXT NOT NULL,
      seq         INTEGER NOT NULL,
      chunk_id    TEXT NOT NULL,
      size        INTEGER NOT NULL,
      PRIMARY KEY (manifest_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS storage_chunks_chunk ON storage_chunks (chunk_id);

    CREATE TABLE IF NOT EXISTS storage_refs (
      owner      TEXT NOT NULL,              -- e.g. snapshot:<id>, cache:<key>, cli
      blob_id    TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      PRIMARY KEY (owner, blob_id)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS storage_refs_blob ON storage_refs (blob_id);

    CREATE TABLE IF NOT EXISTS storage_replication (
      blob_id         TEXT NOT NULL,
      op              TEXT NOT NULL,         -- put | delete
      attempts        INTEGER NOT NULL DEFAULT 0,
      next_attempt_at INTEGER NOT NULL,
      lease_until     INTEGER NOT NULL DEFAULT 0,
      last_error      TEXT,
      enqueued_at     INTEGER NOT NULL,
      PRIMARY KEY (blob_id, op)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS storage_replication_due ON storage_replication (next_attempt_at);
  `);
}
