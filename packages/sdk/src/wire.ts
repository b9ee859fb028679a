/**
 * THE one place where the SDK's camelCase options and results meet the gateway's snake_case wire format, and where
 * options are checked against the protocol's schemas before anything is sent.
 */
import {
  Container,
  ContainerExecRequest,
  ContainerList,
  CreateContainerRequest,
  ExecuteRequest,
  ExecuteResult as WireExecuteResult,
  type ContainerStatus,
  type ExecutionMode,
  type NetworkMode,
  ExecCommand,
  type StreamCommandOf,
  type StreamEvent,
} from '@faas/protocol';
import { FaasError, ValidationError } from './errors.js';

// ---------------------------------------------------------------------------------------------------------------
// Public option and result types (camelCase).

/** What to run: give exactly one of `command` (run with `/bin/sh -c`) or `argv` (no shell). */
export interface ProcessOptions {
  command?: string;
  argv?: string[];
  /** Environment variables added to the process. */
  env?: Record<string, string>;
  /** Absolute directory to run in (default `/workspace`). */
  workingDir?: string;
  /** Sent to the process, then end of input. */
  stdin?: string;
  /**
   * Files written before the command runs: path (absolute, or relative to `workingDir`) → content (text or bytes),
   * or `{ content, mode }` (mode e.g. `0o755`). At most `LIMITS.maxInputFiles` files and `LIMITS.maxInputFileBytes`
   * in all.
   */
  files?: Record<string, FileContent>;
  /** Kill the whole process tree after this long (gateway default 30 000 ms). */
  timeoutMs?: number;
}

/** An input file: its text, its bytes, or either with permission bits (default 0644). */
export type FileContent = string | Uint8Array | { content: string | Uint8Array; mode?: number };

/** Input files in the wire form: text as is, bytes as base64. */
export function filesToWire(files: Record<string, FileContent>): Record<string, unknown> {
  if (files === null || typeof files !== 'object' || Array.isArray(files)) return files;
  const wire: Record<string, unknown> = {};
  for (const [name, file] of Object.entries(files)) {
    const bytes = (c: unknown) => (c instanceof Uint8Array ? { base64: Buffer.from(c.buffer, c.byteOffset, c.byteLength).toString('base64') } : { content: c });
    if (typeof file === 'string') wire[name] = file;
    else if (file instanceof Uint8Array) wire[name] = bytes(file);
    else if (file !== null && typeof file === 'object' && 'content' in file) wire[name] = { ...bytes(file.content), ...(file.mode !== undefined ? { mode: file.mode } : {}) };
    else wire[name] = file; // the schema says what is wrong with it
  }
  return wire;
}

/** Kernel-enforced limits on the whole sandbox. */
export interface ResourceOptions {
  memoryMb?: number;
  cpuCores?: number;
  pidsLimit?: number;
  /** `none` (default) or `bridge` (outbound access). */
  network?: NetworkMode;
  /** Read-only root filesystem; /tmp and the working directory become small writable tmpfs mounts (default false). */
  readOnly?: boolean;
}

/** Live output callbacks: when either is given the call streams (NDJSON) and calls them as output arrives. */
export interface OutputCallbacks {
  onStdout?: (data: string) => void;
  onStderr?: (data: string) => void;
}

export interface ExecuteOptions extends ProcessOptions, ResourceOptions, OutputCallbacks {
  /** Default `ephemeral`. The gateway serves `ephemeral` and `persistent` for now. */
  mode?: ExecutionMode;
  /** Image to run (default `faas/busybox:latest`). */
  image?: string;
  /** Snapshot id to start from (`checkpointed` and `cached` modes). */
  checkpoint?: string;
  /** Cached mode: seconds the result stays cached (default: the gateway's FAAS_CACHE_TTL_S, 3600). */
  cacheTtlS?: number;
  /** Cached mode: also cache non-zero exits, timeouts and OOM kills. */
  cacheFailures?: boolean;
}

export interface ExecOptions extends ProcessOptions, OutputCallbacks {}

export interface CreateSandboxOptions extends ResourceOptions {
  image?: string;
  /** A command kept running in the sandbox; by default none is needed. */
  command?: string;
  argv?: string[];
  env?: Record<string, string>;
  workingDir?: string;
  /** Stop the sandbox after this many seconds without activity; 0 (default) never stops it. */
  idleTimeoutS?: number;
  /** Snapshot id whose files the sandbox starts with. */
  checkpoint?: string;
}

export interface ExecutionResult {
  /** Execution id. */
  id: string;
  mode: ExecutionMode;
  /** Exit status; 128+N when killed by signal N. */
  exitCode: number;
  /** Name of the signal that killed the process (e.g. `SIGKILL`), or null. */
  signal: string | null;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  durationMs: number;
  timedOut: boolean;
  oomKilled: boolean;
  /** The sandbox it ran in (persistent mode, container exec). */
  containerId?: string;
  /** Cached mode: true when the answer came from the cache (nothing ran). */
  cached?: boolean;
  /** Cached mode: the result's key (for `client.cache.delete(key)`). */
  cacheKey?: string;
  /** Checkpointed mode and fork variants: the snapshot taken when the command finished. */
  snapshotId?: string;
}

export interface SandboxLimits {
  memoryMb: number | null;
  cpuCores: number | null;
  pidsLimit: number | null;
  network: NetworkMode;
  /** Read-only root filesystem (absent when the gateway does not say). */
  readOnly?: boolean;
}

/**
 * One entry of a sandbox's recent lifecycle (`created`, `stopped`, `resumed`, `exec_timed_out`, `exec_oom_killed`,
 * `command_exited`, `lost`).
 */
export interface LifecycleEvent {
  /** ISO 8601. */
  at: string;
  event: string;
  detail: Record<string, unknown>;
}

export interface SandboxInfo {
  id: string;
  status: ContainerStatus;
  image: string;
  command: string[] | null;
  env: Record<string, string>;
  workingDir: string;
  limits: SandboxLimits;
  idleTimeoutS: number;
  /** ISO 8601. */
  createdAt: string;
  /** ISO 8601. */
  lastActiveAt: string;
  /** Why it stopped: `request`, `idle`, `engine`, or null. */
  stoppedReason: string | null;
  /** Recent lifecycle events; only on `containers.get(id)` / `refresh()` (absent in lists). */
  lifecycle?: LifecycleEvent[];
}

// ---------------------------------------------------------------------------------------------------------------
// Request options → wire bodies.

/** The part of a zod schema the SDK uses (kept structural so the SDK's types do not depend on zod's). */
export interface SchemaIssue {
  code: string;
  path: PropertyKey[];
  message: string;
  keys?: string[];
}
export interface Schema<T> {
  safeParse(data: unknown): { success: true; data: T } | { success: false; error: { issues: readonly SchemaIssue[] } };
}

/** camelCase option → snake_case wire field, for every option that goes on the wire. */
export const OPTION_TO_WIRE = {
  command: 'command',
  argv: 'argv',
  env: 'env',
  workingDir: 'working_dir',
  stdin: 'stdin',
  files: 'files',
  timeoutMs: 'timeout_ms',
  memoryMb: 'memory_mb',
  cpuCores: 'cpu_cores',
  pidsLimit: 'pids_limit',
  network: 'network',
  readOnly: 'read_only',
  image: 'image',
  mode: 'mode',
  checkpoint: 'checkpoint',
  cacheTtlS: 'cache_ttl_s',
  cacheFailures: 'cache_failures',
  idleTimeoutS: 'idle_timeout_s',
  execId: 'exec_id',
  pty: 'pty',
  cols: 'cols',
  rows: 'rows',
} as const;
type OptionKey = keyof typeof OPTION_TO_WIRE;

const WIRE_TO_OPTION: Record<string, string> = Object.fromEntries(Object.entries(OPTION_TO_WIRE).map(([k, v]) => [v, k]));

const PROCESS_KEYS = ['command', 'argv', 'env', 'workingDir', 'stdin', 'files', 'timeoutMs'] as const satisfies readonly OptionKey[];
const RESOURCE_KEYS = ['memoryMb', 'cpuCores', 'pidsLimit', 'network', 'readOnly'] as const satisfies readonly OptionKey[];
const EXECUTE_KEYS: readonly OptionKey[] = [...PROCESS_KEYS, ...RESOURCE_KEYS, 'image', 'mode', 'checkpoint', 'cacheTtlS', 'cacheFailures'];
const EXEC_KEYS: readonly OptionKey[] = PROCESS_KEYS;
const CREATE_KEYS: readonly OptionKey[] = [...RESOURCE_KEYS, 'image', 'command', 'argv', 'env', 'workingDir', 'idleTimeoutS', 'checkpoint'];
const STREAM_EXEC_KEYS: readonly OptionKey[] = ['execId', 'pty', 'cols', 'rows', 'env', 'workingDir', 'timeoutMs'];
/** Options handled by the SDK itself (never sent). */
const LOCAL_KEYS = new Set(['onStdout', 'onStderr']);

/** The SDK option name for a wire field name (`timeout_ms` → `timeoutMs`); unknown names are returned as is. */
export function optionName(wireField: string): string {
  return WIRE_TO_OPTION[wireField] ?? wireField;
}

function describePath(path: readonly PropertyKey[]): string {
  const [head, ...rest] = path;
  if (head === undefined) return '';
  return [optionName(String(head)), ...rest.map(String)].join('.');
}

/** Turns the first zod issue into a `ValidationError` naming the SDK option (not the wire field). */
export function validationErrorFrom(error: { issues: readonly SchemaIssue[] }, what: string): ValidationError {
  const issue = error.issues[0];
  if (issue === undefined) return new ValidationError('validation_error', `invalid ${what}`);
  if (issue.code === 'unrecognized_keys') {
    const names = (issue.keys ?? []).map(optionName);
    const field = names[0];
    return new ValidationError('validation_error', `invalid ${what}: unknown option ${names.map((n) => `\`${n}\``).join(', ')}`, { field });
  }
  const field = describePath(issue.path);
  const where = field === '' ? '' : ` \`${field}\``;
  return new ValidationError('validation_error', `invalid ${what}${where}: ${issue.message}`, { field: field === '' ? undefined : field });
}

function toWire<T>(options: object, allowed: readonly OptionKey[], schema: Schema<T>, what: string, fixed: Record<string, unknown> = {}): T {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new ValidationError('validation_error', `invalid ${what}: options must be an object`);
  }
  const body: Record<string, unknown> = { ...fixed };
  for (const [key, value] of Object.entries(options)) {
    if (LOCAL_KEYS.has(key)) {
      if (value !== undefined && typeof value !== 'function') {
        throw new ValidationError('validation_error', `invalid ${what} \`${key}\`: must be a function`, { field: key });
      }
      continue;
    }
    if (!(allowed as readonly string[]).includes(key)) {
      throw new ValidationError('validation_error', `invalid ${what}: unknown option \`${key}\``, { field: key });
    }
    if (value === undefined) continue;
    body[OPTION_TO_WIRE[key as OptionKey]] = key === 'files' ? filesToWire(value as Record<string, FileContent>) : value;
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw validationErrorFrom(parsed.error, what);
  return parsed.data;
}

export function executeRequestToWire(options: ExecuteOptions): ExecuteRequest {
  return toWire(options, EXECUTE_KEYS, ExecuteRequest, 'execute option');
}

export function execRequestToWire(options: ExecOptions): ContainerExecRequest {
  return toWire(options, EXEC_KEYS, ContainerExecRequest, 'exec option');
}

export function createRequestToWire(options: CreateSandboxOptions): CreateContainerRequest {
  return toWire(options, CREATE_KEYS, CreateContainerRequest, 'create option');
}

/** Options of `SandboxStream.exec` (the WebSocket `exec` command). */
export interface StreamExecOptions {
  /** Id for the events of this exec; the SDK picks a random one when absent. */
  execId?: string;
  /** Run in a pseudo-terminal (stdout and stderr merged, Ctrl-C as the byte \x03 on stdin). */
  pty?: boolean;
  cols?: number;
  rows?: number;
  env?: Record<string, string>;
  workingDir?: string;
  /** Default: no timeout. */
  timeoutMs?: number;
  /**
   * Resolve only once the gateway reports the process started (its `process_event` or first output), and reject
   * with the typed error when the gateway answers the exec with an `error` event. Default true. Not sent.
   */
  waitForStart?: boolean;
}

export function streamExecToWire(command: string, options: StreamExecOptions): StreamCommandOf<'exec'> {
  const { waitForStart: _local, ...wire } = options;
  return toWire(wire, STREAM_EXEC_KEYS, ExecCommand, 'stream exec option', { type: 'exec', command });
}

/** `exec('ls -l')` runs a shell string, `exec(['ls', '-l'])` an argv, `exec({...})` anything. */
export function normalizeExecInput(input: string | string[] | ExecOptions): ExecOptions {
  if (typeof input === 'string') return { command: input };
  if (Array.isArray(input)) return { argv: input };
  return input;
}

// ---------------------------------------------------------------------------------------------------------------
// Wire answers → results.

export function parseAnswer<T>(schema: Schema<T>, body: unknown, what: string): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue ? `${issue.path.map(String).join('.') || '(root)'}: ${issue.message}` : 'unknown';
    throw new FaasError('invalid_response', `the gateway's ${what} does not match the protocol (${where})`, { cause: parsed.error });
  }
  return parsed.data;
}

export function resultFromWire(body: unknown): ExecutionResult {
  const r = parseAnswer(WireExecuteResult, body, 'execution result');
  const result: ExecutionResult = {
    id: r.id,
    mode: r.mode,
    exitCode: r.exit_code,
    signal: r.signal,
    stdout: r.stdout,
    stderr: r.stderr,
    stdoutTruncated: r.stdout_truncated,
    stderrTruncated: r.stderr_truncated,
    durationMs: r.duration_ms,
    timedOut: r.timed_out,
    oomKilled: r.oom_killed,
  };
  if (r.container_id !== undefined) result.containerId = r.container_id;
  if (r.cached !== undefined) result.cached = r.cached;
  if (r.cache_key !== undefined) result.cacheKey = r.cache_key;
  if (r.snapshot_id !== undefined) result.snapshotId = r.snapshot_id;
  return result;
}

export function sandboxInfoFromWire(body: unknown): SandboxInfo {
  const c = parseAnswer(Container, body, 'container');
  const info: SandboxInfo = {
    id: c.id,
    status: c.status,
    image: c.image,
    command: c.command,
    env: c.env,
    workingDir: c.working_dir,
    limits: {
      memoryMb: c.limits.memory_mb,
      cpuCores: c.limits.cpu_cores,
      pidsLimit: c.limits.pids_limit,
      network: c.limits.network,
    },
    idleTimeoutS: c.idle_timeout_s,
    createdAt: c.created_at,
    lastActiveAt: c.last_active_at,
    stoppedReason: c.stopped_reason,
  };
  if (c.limits.read_only !== undefined) info.limits.readOnly = c.limits.read_only;
  if (c.lifecycle !== undefined) info.lifecycle = c.lifecycle.map((l) => ({ at: l.at, event: l.event, detail: l.detail }));
  return info;
}

export function sandboxListFromWire(body: unknown): SandboxInfo[] {
  const list = parseAnswer(ContainerList, body, 'container list');
  return list.containers.map((c) => sandboxInfoFromWire(c));
}

/** The result of a streamed execution, assembled from its events (outputs capped like the REST answer). */
export function resultFromStream(parts: {
  exit: Extract<StreamEvent, { type: 'exit' }>;
  mode: ExecutionMode;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  durationMs: number;
  containerId?: string | undefined;
}): ExecutionResult {
  const { exit } = parts;
  const result: ExecutionResult = {
    id: exit.exec_id ?? '',
    mode: parts.mode,
    exitCode: exit.code,
    signal: exit.signal ?? null,
    stdout: parts.stdout,
    stderr: parts.stderr,
    stdoutTruncated: parts.stdoutTruncated,
    stderrTruncated: parts.stderrTruncated,
    durationMs: parts.durationMs,
    timedOut: exit.timed_out ?? false,
    oomKilled: exit.oom_killed ?? false,
  };
  const containerId = parts.containerId ?? exit.container_id;
  if (containerId !== undefined) result.containerId = containerId;
  return result;
}
