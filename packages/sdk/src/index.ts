/**
 * @faas/sdk — TypeScript client of the faas gateway: run code in sandboxes, manage persistent sandboxes, follow
 * their events over a WebSocket. Wire types and schemas come from `@faas/protocol`.
 */
export { FaasClient, Containers, Sandbox, DEFAULT_BASE_URL, DEFAULT_TIMEOUT_MS, type FaasClientOptions } from './client.js';
export { SandboxStream, DEFAULT_MAX_BUFFERED_EVENTS, type StreamOptions } from './stream.js';
export { Pools } from './pools.js';
export { Tenants } from './tenants.js';
export { Images, DEFAULT_BUILD_TIMEOUT_MS, type BuildCallbacks } from './images.js';
export { Caches } from './caches.js';
export { SandboxFiles, type FileInfo, type FileReadOptions, type FileWriteOptions, type FileStream } from './files.js';
export {
  Snapshots,
  ResultCache,
  forkRequestToWire,
  type Snapshot,
  type ForkOptions,
  type ForkVariantOptions,
  type ForkResult,
  type ForkVariantResult,
} from './snapshots.js';
export {
  ADMIN_OPTION_TO_WIRE,
  type PrewarmOptions,
  type PoolInfo,
  type TenantQuotas,
  type CreateTenantOptions,
  type Tenant,
  type ApiKeyInfo,
  type CreatedApiKey,
  type BuildImageOptions,
  type ImageInfo,
  type CacheInfo,
  type CachePurgeResult,
} from './wire-admin.js';
export {
  FaasError,
  ValidationError,
  NotFoundError,
  ConflictError,
  AuthError,
  QuotaError,
  TimeoutError,
  ConnectionError,
  EngineUnavailableError,
  GoneError,
  ERROR_CLASSES,
  classFor,
  errorFromWire,
  type FaasErrorDetails,
} from './errors.js';
export {
  OPTION_TO_WIRE,
  optionName,
  executeRequestToWire,
  execRequestToWire,
  createRequestToWire,
  streamExecToWire,
  resultFromWire,
  sandboxInfoFromWire,
  type ProcessOptions,
  type FileContent,
  type ResourceOptions,
  type OutputCallbacks,
  type ExecuteOptions,
  type ExecOptions,
  type CreateSandboxOptions,
  type StreamExecOptions,
  type ExecutionResult,
  type SandboxInfo,
  type SandboxLimits,
  type LifecycleEvent,
} from './wire.js';
export { NdjsonDecoder, toStreamEvent } from './ndjson.js';
export type {
  FileWritten,
  StreamEvent,
  StreamEventOf,
  StreamCommand,
  StreamCommandOf,
  SandboxState,
  ExecutionMode,
  NetworkMode,
  ContainerStatus,
  ErrorCode,
} from '@faas/protocol';
export { ERROR_CODES, LIMITS, DEFAULT_IMAGE, DEFAULT_WORKING_DIR, EXECUTION_MODES, FILE_MODE_HEADER } from '@faas/protocol';
