/** `FaasClient`: the REST calls of /api/v1, NDJSON streaming of executions, and the WebSocket stream. */
import { FILE_MODE_HEADER, FileWritten, LIMITS, type ExecutionMode, type StreamEvent } from '@faas/protocol';
import { FaasError, ValidationError, errorFromWire } from './errors.js';
import { Transport, readNdjsonBody, type Method } from './http.js';
import { toStreamEvent } from './ndjson.js';
import { SandboxStream, type StreamOptions } from './stream.js';
import { Caches } from './caches.js';
import { SandboxFiles, checkFilePath, fileToWrite, type FileInfo, type FileReadOptions, type FileStream, type FileWriteOptions } from './files.js';
import { ResultCache, Snapshots, fork, type ForkOptions, type ForkResult, type Snapshot } from './snapshots.js';
import { Images } from './images.js';
import { Pools } from './pools.js';
import { Tenants } from './tenants.js';
import {
  createRequestToWire,
  execRequestToWire,
  executeRequestToWire,
  normalizeExecInput,
  resultFromStream,
  parseAnswer,
  resultFromWire,
  sandboxInfoFromWire,
  sandboxListFromWire,
  type CreateSandboxOptions,
  type ExecOptions,
  type ExecuteOptions,
  type ExecutionResult,
  type LifecycleEvent,
  type OutputCallbacks,
  type SandboxInfo,
  type SandboxLimits,
} from './wire.js';

export const DEFAULT_BASE_URL = 'http://127.0.0.1:8080';
export const DEFAULT_TIMEOUT_MS = 60_000;
/** Added to an execution's own timeout to get the HTTP deadline of execute/exec calls. */
const EXECUTION_DEADLINE_MARGIN_MS = 30_000;
const NDJSON = 'application/x-ndjson';

export interface FaasClientOptions {
  /** Gateway URL (default: `FAAS_URL`, then `http://127.0.0.1:8080`). */
  baseUrl?: string;
  /** API key sent as `Authorization: Bearer <key>` (default: `FAAS_API_KEY`). */
  apiKey?: string;
  /**
   * Deadline of one request in ms (default 60 000). Execute and exec calls wait at least the execution's own
   * timeout plus 30 s.
   */
  timeoutMs?: number;
  /** Extra attempts of a request that may be retried (default 2; see the README for which ones). */
  retries?: number;
  /** First backoff delay in ms, doubled at each retry (default 200). */
  retryBaseMs?: number;
}

/** A sandbox (persistent container): its fields as last fetched, and methods over the client's calls. */
export class Sandbox implements SandboxInfo {
  id!: string;
  status!: SandboxInfo['status'];
  image!: string;
  command!: string[] | null;
  env!: Record<string, string>;
  workingDir!: string;
  limits!: SandboxLimits;
  idleTimeoutS!: number;
  createdAt!: string;
  lastActiveAt!: string;
  stoppedReason!: string | null;
  /** Recent lifecycle events: filled by `containers.get(id)` and `refresh()`, absent from lists. */
  lifecycle?: LifecycleEvent[];
  /** Its files: `read`, `readText`, `readStream`, `write`. */
  readonly files!: SandboxFiles;

  constructor(
    private readonly client: FaasClient,
    info: SandboxInfo,
  ) {
    Object.defineProperty(this, 'client', { enumerable: false });
    Object.defineProperty(this, 'files', { enumerable: false, value: new SandboxFiles(client.containers, info.id) });
    this.update(info);
  }

  /** Runs a command in the sandbox: a shell string, an argv array, or options (with live output callbacks). */
  exec(input: string | string[] | ExecOptions): Promise<ExecutionResult> {
    return this.client.containers.exec(this.id, input);
  }
  async stop(): Promise<this> {
    return this.update(await this.client.containers.stopInfo(this.id));
  }
  async resume(): Promise<this> {
    return this.update(await this.client.containers.resumeInfo(this.id));
  }
  /** Snapshot of the sandbox's files now (it is frozen while they are read). */
  checkpoint(name?: string): Promise<Snapshot> {
    return this.client.snapshots.checkpoint(this.id, name);
  }
  delete(): Promise<void> {
    return this.client.containers.delete(this.id);
  }
  /** Fetches the fields again. */
  async refresh(): Promise<this> {
    return this.update(await this.client.containers.getInfo(this.id));
  }
  /** Opens the sandbox's WebSocket event stream. */
  stream(options?: StreamOptions): Promise<SandboxStream> {
    return this.client.stream(this.id, options);
  }

  /** The plain fields (what `JSON.stringify` prints). */
  toJSON(): SandboxInfo {
    return {
      id: this.id,
      status: this.status,
      image: this.image,
      command: this.command,
      env: this.env,
      workingDir: this.workingDir,
      limits: this.limits,
      idleTimeoutS: this.idleTimeoutS,
      createdAt: this.createdAt,
      lastActiveAt: this.lastActiveAt,
      stoppedReason: this.stoppedReason,
      ...(this.lifecycle !== undefined ? { lifecycle: this.lifecycle } : {}),
    };
  }

  private update(info: SandboxInfo): this {
    Object.assign(this, info);
    return this;
  }
}

/** `client.containers`: sandboxes that outlive one execution. */
export class Containers {
  constructor(
    private readonly client: FaasClient,
    private readonly transport: Transport,
  ) {}

  async create(options: CreateSandboxOptions = {}): Promise<Sandbox> {
    const body = createRequestToWire(options);
    return new Sandbox(this.client, sandboxInfoFromWire(await this.transport.json('POST', '/containers', { body })));
  }
  async get(id: string): Promise<Sandbox> {
    return new Sandbox(this.client, await this.getInfo(id));
  }
  async list(): Promise<Sandbox[]> {
    const infos = sandboxListFromWire(await this.transport.json('GET', '/containers'));
    return infos.map((info) => new Sandbox(this.client, info));
  }
  async exec(id: string, input: string | string[] | ExecOptions): Promise<ExecutionResult> {
    const options = normalizeExecInput(input);
    const body = execRequestToWire(options);
    return this.client.runExecution(`${path(id)}/exec`, body, 'persistent', options, id);
  }
  async stop(id: string): Promise<Sandbox> {
    return new Sandbox(this.client, await this.stopInfo(id));
  }
  async resume(id: string): Promise<Sandbox> {
    return new Sandbox(this.client, await this.resumeInfo(id));
  }
  async delete(id: string): Promise<void> {
    await this.transport.json('DELETE', path(id));
  }

  /** The bytes of a file of the sandbox (running or stopped); `filePath` absolute or relative to its working directory. */
  async readFile(id: string, filePath: string, options: FileReadOptions = {}): Promise<Uint8Array> {
    const { response, timeoutMs } = await this.openFile(id, filePath, options);
    return this.transport.readBytes(response, timeoutMs);
  }
  /** A file of the sandbox as UTF-8 text. */
  async readFileText(id: string, filePath: string, options: FileReadOptions = {}): Promise<string> {
    return Buffer.from(await this.readFile(id, filePath, options)).toString('utf8');
  }
  /** A file of the sandbox as a stream (its size and mode known first), for files too large to hold in memory. */
  async readFileStream(id: string, filePath: string, options: FileReadOptions = {}): Promise<FileStream> {
    const { response, file } = await this.openFile(id, filePath, options);
    if (!response.body) throw new FaasError('invalid_response', 'the gateway answered a file read without a body');
    return { ...file, stream: response.body };
  }
  /**
   * Creates or replaces a file in a running sandbox (parent folders made, owned by root, `mode` default 0o644);
   * text is written as UTF-8. At most 64 MiB.
   */
  async writeFile(id: string, filePath: string, data: string | Uint8Array, options: FileWriteOptions = {}): Promise<FileInfo> {
    const checked = checkFilePath(filePath);
    const { bytes, mode } = fileToWrite(data, options);
    const query = `path=${encodeURIComponent(checked)}${mode === undefined ? '' : `&mode=${mode}`}`;
    const answer = parseAnswer(FileWritten, await this.transport.json('PUT', `${path(id)}/files?${query}`, { bytes, ...timeoutOf(options) }), 'file write answer');
    return { path: answer.path, size: answer.size, mode: parseInt(answer.mode, 8) };
  }

  private async openFile(id: string, filePath: string, options: FileReadOptions): Promise<{ response: Response; timeoutMs: number; file: { size: number; mode: number } }> {
    const checked = checkFilePath(filePath);
    const { response, timeoutMs } = await this.transport.send('GET', `${path(id)}/files?path=${encodeURIComponent(checked)}`, {
      accept: 'application/octet-stream',
      ...timeoutOf(options),
    });
    const size = Number(response.headers.get('content-length') ?? NaN);
    const mode = parseInt(response.headers.get(FILE_MODE_HEADER) ?? '', 8);
    if (!Number.isFinite(size) || !Number.isFinite(mode)) {
      await response.body?.cancel().catch(() => undefined);
      throw new FaasError('invalid_response', `the gateway answered a file read without its content-length or ${FILE_MODE_HEADER} header`, { status: response.status });
    }
    return { response, timeoutMs, file: { size, mode } };
  }

  /** @internal */
  async getInfo(id: string): Promise<SandboxInfo> {
    return sandboxInfoFromWire(await this.transport.json('GET', path(id)));
  }
  /** @internal */
  async stopInfo(id: string): Promise<SandboxInfo> {
    return sandboxInfoFromWire(await this.transport.json('POST', `${path(id)}/stop`));
  }
  /** @internal */
  async resumeInfo(id: string): Promise<SandboxInfo> {
    return sandboxInfoFromWire(await this.transport.json('POST', `${path(id)}/resume`));
  }
}

function timeoutOf(options: { timeoutMs?: number | undefined }): { timeoutMs?: number } {
  const ms = options.timeoutMs;
  if (ms === undefined) return {};
  if (!Number.isInteger(ms) || ms < 1) throw new ValidationError('validation_error', 'invalid option `timeoutMs`: must be a positive integer', { field: 'timeoutMs' });
  return { timeoutMs: ms };
}

function path(id: string): string {
  if (typeof id !== 'string' || id === '') throw new ValidationError('validation_error', 'a sandbox id is required', { field: 'id' });
  return `/containers/${encodeURIComponent(id)}`;
}

export class FaasClient {
  readonly baseUrl: string;
  readonly containers: Containers;
  /** Warm pools (`prewarm`, `list`). */
  readonly pools: Pools;
  /** Tenants, API keys and quotas (admin key only). */
  readonly tenants: Tenants;
  /** Images and user templates (`build`, `list`, `delete`). */
  readonly images: Images;
  /** Shared dependency caches (`list`, `purge`). */
  readonly caches: Caches;
  /** Snapshots (`list`, `get`, `delete`, `checkpoint`). */
  readonly snapshots: Snapshots;
  /** Results of cached-mode executions (`delete`, `clear`). */
  readonly cache: ResultCache;
  private readonly transport: Transport;

  constructor(options: FaasClientOptions = {}) {
    const baseUrl = options.baseUrl ?? process.env.FAAS_URL ?? DEFAULT_BASE_URL;
    try {
      const url = new URL(baseUrl);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http');
    } catch {
      throw new ValidationError('validation_error', `invalid option \`baseUrl\`: ${JSON.stringify(baseUrl)} is not an http(s) URL`, {
        field: 'baseUrl',
      });
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) {
      throw new ValidationError('validation_error', 'invalid option `timeoutMs`: must be a positive integer', { field: 'timeoutMs' });
    }
    const apiKey = options.apiKey ?? process.env.FAAS_API_KEY;
    this.transport = new Transport({
      baseUrl,
      apiKey: apiKey === '' ? undefined : apiKey,
      timeoutMs,
      retries: options.retries ?? 2,
      retryBaseMs: options.retryBaseMs ?? 200,
    });
    this.baseUrl = this.transport.baseUrl;
    this.containers = new Containers(this, this.transport);
    this.pools = new Pools(this.transport);
    this.tenants = new Tenants(this.transport);
    this.images = new Images(this.transport);
    this.caches = new Caches(this.transport);
    this.snapshots = new Snapshots(this.transport);
    this.cache = new ResultCache(this.transport);
  }

  /**
   * Runs a command in a fresh sandbox and returns its result. With `onStdout`/`onStderr` the output is streamed
   * (NDJSON) and the callbacks are called as it arrives; the full result is still returned.
   */
  async execute(options: ExecuteOptions): Promise<ExecutionResult> {
    const body = executeRequestToWire(options);
    return this.runExecution('/execute', body, body.mode ?? 'ephemeral', options, undefined);
  }

  /** Opens the WebSocket event stream of a sandbox. */
  async stream(containerId: string, options?: StreamOptions): Promise<SandboxStream> {
    path(containerId);
    return SandboxStream.open(this.transport, containerId, options);
  }

  /**
   * Runs variants in parallel, each on its own copy of `parent` (an execution id within its retention window, a
   * snapshot id, or a live sandbox id); every variant's result or error, like Promise.allSettled.
   */
  fork(options: ForkOptions): Promise<ForkResult> {
    return fork(this.transport, options);
  }

  /** @internal Shared by execute and container exec: plain JSON, or NDJSON when output callbacks are given. */
  async runExecution(
    urlPath: string,
    body: { timeout_ms?: number | undefined },
    mode: ExecutionMode,
    callbacks: OutputCallbacks,
    containerId: string | undefined,
  ): Promise<ExecutionResult> {
    const timeoutMs = Math.max(this.transport.options.timeoutMs, (body.timeout_ms ?? LIMITS.defaultTimeoutMs) + EXECUTION_DEADLINE_MARGIN_MS);
    if (!callbacks.onStdout && !callbacks.onStderr) {
      return withContainer(resultFromWire(await this.transport.json('POST', urlPath, { body, timeoutMs })), containerId);
    }
    const started = Date.now();
    const { response } = await this.transport.send('POST', urlPath, { body, timeoutMs, accept: NDJSON });
    const contentType = response.headers.get('content-type') ?? '';
    if (!contentType.includes(NDJSON)) {
      // A gateway that ignores Accept answers the plain result: hand its output to the callbacks in one piece.
      const text = await this.transport.readText(response, timeoutMs);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        throw new FaasError('invalid_response', `the gateway answered ${urlPath} with neither NDJSON nor JSON (${contentType || 'no content type'})`);
      }
      const result = withContainer(resultFromWire(body), containerId);
      if (result.stdout) callbacks.onStdout?.(result.stdout);
      if (result.stderr) callbacks.onStderr?.(result.stderr);
      return result;
    }
    return this.readExecutionStream(response, mode, callbacks, containerId, started, timeoutMs);
  }

  private async readExecutionStream(
    response: Response,
    mode: ExecutionMode,
    callbacks: OutputCallbacks,
    containerId: string | undefined,
    started: number,
    timeoutMs: number,
  ): Promise<ExecutionResult> {
    const out = new CappedText(LIMITS.outputCapBytes);
    const err = new CappedText(LIMITS.outputCapBytes);
    let exit: Extract<StreamEvent, { type: 'exit' }> | undefined;
    const handle = (value: unknown): void => {
      const event = toStreamEvent(value);
      if (event === undefined || exit) return;
      switch (event.type) {
        case 'stdout':
          out.add(event.data);
          callbacks.onStdout?.(event.data);
          break;
        case 'stderr':
          err.add(event.data);
          callbacks.onStderr?.(event.data);
          break;
        case 'exit':
          exit = event;
          break;
        case 'error':
          throw errorFromWire(0, { error: event.code ?? 'internal_error', message: event.message });
        default:
          break;
      }
    };
    await readNdjsonBody(response, this.transport, timeoutMs, handle, () => exit !== undefined);
    if (!exit) throw this.transport.lostError('the execution stream ended before its exit event');
    return resultFromStream({
      exit,
      mode,
      stdout: out.text,
      stderr: err.text,
      stdoutTruncated: out.truncated,
      stderrTruncated: err.truncated,
      durationMs: Date.now() - started,
      containerId,
    });
  }

  /** @internal For tests and advanced use: one raw JSON request to /api/v1. */
  request(method: Method, urlPath: string, body?: unknown): Promise<unknown> {
    return this.transport.json(method, urlPath, body === undefined ? {} : { body });
  }
}

function withContainer(result: ExecutionResult, containerId: string | undefined): ExecutionResult {
  if (containerId !== undefined && result.containerId === undefined) result.containerId = containerId;
  return result;
}

/** Output kept in a streamed result: at most `cap` bytes (UTF-8) per stream, like the REST answer. */
class CappedText {
  private parts: string[] = [];
  private bytes = 0;
  truncated = false;
  constructor(private readonly cap: number) {}
  add(data: string): void {
    if (this.truncated) return;
    const size = Buffer.byteLength(data);
    if (this.bytes + size <= this.cap) {
      this.parts.push(data);
      this.bytes += size;
      return;
    }
    const room = this.cap - this.bytes;
    this.parts.push(Buffer.from(data).subarray(0, room).toString('utf8').replace(/\uFFFD$/, ''));
    this.bytes = this.cap;
    this.truncated = true;
  }
  get text(): string {
    return this.parts.join('');
  }
}
