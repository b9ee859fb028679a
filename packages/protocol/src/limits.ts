/**
 * Bounds on what a request may ask for. They live here so the gateway's validation, the OpenAPI document and
 * the SDK's client-side checks all agree.
 */
export const LIMITS = {
  /** Longest an execution may run: one day. */
  maxTimeoutMs: 24 * 60 * 60 * 1000,
  defaultTimeoutMs: 30_000,
  minMemoryMb: 6,
  maxMemoryMb: 256 * 1024,
  /** The engine's smallest CPU quota (1 ms per 100 ms period); below it the container cannot start. */
  minCpuCores: 0.01,
  maxCpuCores: 256,
  maxPidsLimit: 1_000_000,
  /** Longest a persistent sandbox may sit idle before it is stopped: 30 days (0 turns idle stopping off). */
  maxIdleTimeoutS: 30 * 24 * 60 * 60,
  /** Largest stdin accepted in a REST body. */
  maxStdinBytes: 16 * 1024 * 1024,
  /** Output kept per stream in a REST answer; beyond it the stream is cut and `*_truncated` is true. */
  outputCapBytes: 16 * 1024 * 1024,
  /** Input files of one request (`files`): how many, and their bytes in all (decoded). */
  maxInputFiles: 1000,
  maxInputFileBytes: 8 * 1024 * 1024,
  /** Largest file written with PUT /api/v1/containers/{id}/files (the route's body limit). Reads have no limit. */
  maxFileWriteBytes: 64 * 1024 * 1024,
  maxEnvEntries: 1024,
  maxArgvEntries: 4096,
  maxCommandBytes: 1024 * 1024,
  maxPtyCols: 1000,
  maxPtyRows: 1000,
  /** How long a prewarm waits for its pool to be full by default, and at most. */
  defaultPrewarmWaitS: 60,
  maxPrewarmWaitS: 600,
  /** How long a template build may run before the gateway cancels it (the SDK and CLI wait a little longer). */
  maxBuildMs: 30 * 60_000,
} as const;

export const DEFAULT_IMAGE = 'faas/busybox:latest';
export const DEFAULT_WORKING_DIR = '/workspace';
