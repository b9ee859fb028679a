/**
 * The contract between the platform and a sandbox runtime (Docker now, a microVM later). It is deliberately
 * small: a runtime makes sandboxes exist and runs processes in them through the in-sandbox agent; everything
 * about modes, quotas, persistence and streaming to clients lives above it.
 */
import type { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import type { NetworkMode } from '@faas/protocol';

export interface SandboxLimits {
  memoryMb?: number | undefined;
  cpuCores?: number | undefined;
  pidsLimit?: number | undefined;
  network: NetworkMode;
  /** Read-only root filesystem, with tmpfs at /tmp and the working directory. */
  readOnly?: boolean | undefined;
}

export interface SandboxSpec {
  /** Platform id of the sandbox; the runtime labels what it creates with it. */
  id: string;
  image: string;
  env: Record<string, string>;
  /** Where processes start by default and whose changes become file events. */
  workingDir: string;
  limits: SandboxLimits;
  /** Extra labels (kind of sandbox and so on). */
  labels?: Record<string, string>;
  /** Named volumes mounted into the sandbox (shared dependency caches). */
  volumes?: VolumeMount[];
}

export interface VolumeMount {
  /** The engine's volume name; created on first use. */
  volume: string;
  /** Absolute path inside the sandbox. */
  target: string;
  readOnly?: boolean;
}

export interface ProcessSpec {
  argv: string[];
  env?: Record<string, string> | undefined;
  cwd?: string | undefined;
  pty?: { cols: number; rows: number } | undefined;
  /** Whether the caller will write to stdin (otherwise the process reads /dev/null). */
  stdin?: boolean | undefined;
}

export interface ProcessExit {
  exitCode: number;
  signal: string | null;
  oomKilled: boolean;
}

/**
 * A running process. 'stdout' and 'stderr' (Buffer) are all emitted before `exited` settles; 'error_message'
 * (string) says why a program could not be started (it then exits with 127 or 126, as in a shell).
 */
export interface ProcessHandle extends EventEmitter {
  /** The runtime's id of the process, as carried by process events. */
  readonly id: number;
  readonly started: Promise<number>;
  readonly exited: Promise<ProcessExit>;
  write(data: Buffer | string): void;
  closeStdin(): void;
  /** `tree` also reaches descendants that left the process group. */
  signal(sig: string | number, opts?: { tree?: boolean }): void;
  resize(cols: number, rows: number): void;
}

export type SandboxFileEvent = { path: string; event: 'created' | 'modified' | 'deleted' | 'renamed' | 'overflow'; from?: string };
export type SandboxProcessEvent = { pid: number; command: string; event: 'started' | 'exited'; execId?: number };

/**
 * Events of a running sandbox: 'file_event' (SandboxFileEvent), 'process_event' (SandboxProcessEvent),
 * 'custom' (the raw line a process wrote to $FAAS_EVENTS), 'down' (Error: the agent went away).
 */
export type SandboxEvents = EventEmitter;

export interface SandboxInfo {
  id: string;
  /** The engine's own id. */
  runtimeId: string;
  running: boolean;
  image: string;
  /** The immutable id of the image it was created from (a tag may since point elsewhere). */
  imageId: string;
  labels: Record<string, string>;
  oomKilled: boolean;
  exitCode: number | null;
}

export interface RuntimeHealth {
  reachable: boolean;
  version: string | null;
  error: string | null;
}

/** A sandbox's filesystem changes against its image (see docker/filesystem-diff.ts). */
export interface FilesystemChanges {
  /** One tar of the added and modified paths, names relative to `/`; consume it to the end. */
  archive: NodeJS.ReadableStream;
  /** Paths deleted against the image. */
  deletions: string[];
  /** The image (tag) and its immutable id. */
  image: string;
  imageId: string;
  /** Entries and content bytes of the archive, complete once it has been read. */
  stats: { entries: number; contentBytes: number };
}

/**
 * What is at a path of a sandbox. A final symbolic link is not followed; `missing` also covers a path through
 * something that is not a folder (`reason` says so when known).
 */
export type SandboxPathStat =
  | { type: 'file'; size: number; mode: number }
  | { type: 'directory'; mode: number }
  | { type: 'symlink'; target: string }
  | { type: 'other'; kind: string }
  | { type: 'missing'; reason?: string }
  /** The engine could not say (e.g. a parent of the path is a file); a write then reports the reason. */
  | { type: 'unknown' };

/**
 * A regular file being read out of a sandbox: `content` streams exactly `size` bytes. Read it to its end or
 * destroy it: until then the engine may hold the sandbox (see DockerRuntime.readFile).
 */
export type SandboxFileRead = { type: 'file'; size: number; mode: number; content: Readable } | Exclude<SandboxPathStat, { type: 'file' }>;

export interface Runtime {
  readonly name: string;
  /** Like resolveImage, but answered from memory while the engine reports image changes (no engine round trip). */
  imageId(image: string): Promise<string>;
  /**
   * Keeps the sandbox's files still (when running, unless `freeze: false`: nothing runs in it any more): no exec
   * starts, and it is frozen if anything runs in it. Hands its changes to `consume`, and lets it go once they
   * have been read.
   */
  captureChanges<T>(id: string, consume: (changes: FilesystemChanges) => Promise<T>, opts?: { freeze?: boolean }): Promise<T>;
  /** Applies captured changes to a (fresh) sandbox of the same image: deletions, then the archive. */
  applyChanges(id: string, archive: NodeJS.ReadableStream, deletions: string[]): Promise<void>;
  /** What is at `path` (absolute) in the sandbox, running or stopped. */
  statPath(id: string, path: string): Promise<SandboxPathStat>;
  /** Streams a regular file (absolute path) out of the sandbox, running or stopped; anything else is only described. */
  readFile(id: string, path: string): Promise<SandboxFileRead>;
  /**
   * Extracts a tar of files (names relative to `/`, owners and modes from its headers) into a running sandbox:
   * parent folders are made, existing files replaced. Waits while a capture holds the sandbox still.
   */
  writeFiles(id: string, archive: NodeJS.ReadableStream): Promise<void>;
  health(): Promise<RuntimeHealth>;
  /** Checks the image exists (trying a pull once when it does not); returns its immutable id. */
  resolveImage(image: string): Promise<string>;
  /** The labels of an image present in the engine ({} when it has none or is missing). */
  imageLabels(image: string): Promise<Record<string, string>>;
  /** Creates and starts the sandbox and waits until its agent answers. */
  create(spec: SandboxSpec): Promise<SandboxInfo>;
  exec(id: string, spec: ProcessSpec): Promise<ProcessHandle>;
  /** Events of a running sandbox; one emitter per sandbox, live while it runs. */
  events(id: string): SandboxEvents;
  processes(id: string): Promise<Array<{ pid: number; ppid: number; command: string; execId?: number }>>;
  /** Round trip to the sandbox's agent in ms; rejects when it does not answer within `timeoutMs`. */
  ping(id: string, timeoutMs: number): Promise<number>;
  /** Stops every process; the filesystem stays. */
  stop(id: string): Promise<void>;
  /** Starts a stopped sandbox again and waits for its agent. */
  resume(id: string): Promise<void>;
  remove(id: string): Promise<void>;
  inspect(id: string): Promise<SandboxInfo | null>;
  /** Every sandbox this runtime instance owns (by label), running or not. */
  list(): Promise<SandboxInfo[]>;
  /** Reconnects to the agent of a sandbox found running after a gateway restart. */
  adopt(id: string): Promise<void>;
  close(): Promise<void>;
}
