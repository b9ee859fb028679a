/** Public API of the storage module: content-addressed blobs with chunking, compression, tiers and gc. */
export {
  BlobStore,
  type BlobStoreOptions,
  type PutOptions,
  type PutResult,
  type BlobStat,
  type BlobListEntry,
  type StorageStats,
  type VerifyReport,
  type VerifyProblem,
} from './blob-store.js';
export { DEFAULT_CHUNK_SIZES, StreamChunker, chunkLengths, type ChunkSizes } from './chunker.js';
export type { CodecChoice, CodecName } from './codec-core.js';
export { storageConfigFromEnv, parseBytes, parseObjectStoreUrl, type StorageConfig, type S3TierConfig } from './config.js';
export {
  StorageError,
  InvalidBlobIdError,
  BlobNotFoundError,
  BlobCorruptError,
  StorageFullError,
  BlobInUseError,
  RemoteStoreError,
  StoreClosedError,
  assertBlobId,
} from './errors.js';
export { DEFAULT_GC_GRACE_MS, type GcOptions, type GcReport } from './gc.js';
export { type Logger, consoleLogger, silentLogger } from './logger.js';
export { type ReplicationOptions } from './replication.js';
export { migrateStorage } from './schema.js';
