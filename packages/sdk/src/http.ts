/**
 * HTTP transport: one request with its deadline, error mapping and the retry policy.
 *
 * Retry policy (exponential backoff, `retryBaseMs * 2^n`, at most 5 s between attempts, `retries` extra attempts):
 * - any method, when the connection was refused (nothing was sent, so nothing can have happened);
 * - GET, PUT and DELETE (idempotent) also on other network errors and on 502/503/504 answers.
 * Nothing else is retried: a POST that may have reached the gateway is never sent twice.
 */
import { ConnectionError, FaasError, TimeoutError, errorFromWire } from './errors.js';
import { NdjsonDecoder } from './ndjson.js';

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface TransportOptions {
  baseUrl: string;
  apiKey: string | undefined;
  /** Default deadline of one request, including reading its answer. */
  timeoutMs: number;
  retries: number;
  retryBaseMs: number;
}

export interface RequestOptions {
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as is, as `application/octet-stream` (instead of `body`). */
  bytes?: Uint8Array;
  /** Overrides the default deadline. */
  timeoutMs?: number;
  /** Accept header (default application/json). */
  accept?: string;
}

const IDEMPOTENT: ReadonlySet<Method> = new Set(['GET', 'PUT', 'DELETE']);
const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([502, 503, 504]);
const MAX_BACKOFF_MS = 5_000;

/** The code and text of a network failure as fetch (undici) reports it. */
export function networkFailure(err: unknown): { code: string | undefined; reason: string } {
  let cause: unknown = err instanceof Error && err.cause !== undefined ? err.cause : err;
  if (cause instanceof AggregateError && cause.errors.length > 0) cause = cause.errors[0];
  const code = typeof (cause as { code?: unknown })?.code === 'string' ? (cause as { code: string }).code : undefined;
  const message = cause instanceof Error ? cause.message : String(cause);
  return { code, reason: message || code || 'network error' };
}

function isTimeout(err: unknown): boolean {
  return err instanceof Error && (err.name === 'TimeoutError' || (err.name === 'AbortError' && String(err.message).includes('timeout')));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class Transport {
  readonly baseUrl: string;
  constructor(readonly options: TransportOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
  }

  url(path: string): string {
    return `${this.baseUrl}/api/v1${path}`;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    const headers: Record<string, string> = { 'user-agent': 'faas-sdk/0.1.0', ...extra };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    return headers;
  }

  connectionError(reason: string, code = 'connection_error', cause?: unknown): ConnectionError {
    return new ConnectionError(code, `cannot reach the gateway at ${this.baseUrl}: ${reason}`, { url: this.baseUrl, reason, cause });
  }

  lostError(reason: string, cause?: unknown): ConnectionError {
    return new ConnectionError('connection_error', `the connection to the gateway at ${this.baseUrl} was lost: ${reason}`, {
      url: this.baseUrl,
      reason,
      cause,
    });
  }

  timeoutError(ms: number): TimeoutError {
    return new TimeoutError('timeout', `the gateway at ${this.baseUrl} did not answer within ${ms} ms (client timeoutMs)`);
  }

  /**
   * Sends a request and returns the response once its status is a success (the body is not read). Error answers
   * are thrown as typed errors. `signal` is the request's deadline and also covers reading the body.
   */
  async send(method: Method, path: string, opts: RequestOptions = {}): Promise<{ response: Response; timeoutMs: number }> {
    const timeoutMs = opts.timeoutMs ?? this.options.timeoutMs;
    const headers = this.headers({ accept: opts.accept ?? 'application/json' });
    let payload: string | Uint8Array | undefined;
    if (opts.bytes !== undefined) {
      headers['content-type'] = 'application/octet-stream';
      payload = opts.bytes;
    } else if (opts.body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(opts.body);
    }
    for (let attempt = 0; ; attempt++) {
      const canRetry = attempt < this.options.retries;
      let response: Response;
      try {
        response = await fetch(this.url(path), { method, headers, body: payload as BodyInit | undefined, signal: AbortSignal.timeout(timeoutMs) });
      } catch (err) {
        if (isTimeout(err)) throw this.timeoutError(timeoutMs);
        const { code, reason } = networkFailure(err);
        if (canRetry && (code === 'ECONNREFUSED' || IDEMPOTENT.has(method))) {
          await this.backoff(attempt);
          continue;
        }
        throw this.connectionError(reason, 'connection_error', err);
      }
      if (response.ok) return { response, timeoutMs };
      if (canRetry && IDEMPOTENT.has(method) && RETRYABLE_STATUSES.has(response.status)) {
        await response.body?.cancel().catch(() => undefined);
        await this.backoff(attempt);
        continue;
      }
      throw await this.errorFrom(response, timeoutMs);
    }
  }

  /** Sends a request and parses its JSON answer (`undefined` for 204). */
  async json(method: Method, path: string, opts: RequestOptions = {}): Promise<unknown> {
    const { response, timeoutMs } = await this.send(method, path, opts);
    if (response.status === 204) {
      await response.body?.cancel().catch(() => undefined);
      return undefined;
    }
    const text = await this.readText(response, timeoutMs);
    if (text === '') return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new FaasError('invalid_response', `the gateway answered ${method} ${path} with something that is not JSON`, {
        status: response.status,
      });
    }
  }

  /** The whole body as bytes, with read failures as the transport's typed errors. */
  async readBytes(response: Response, timeoutMs: number): Promise<Uint8Array> {
    try {
      return new Uint8Array(await response.arrayBuffer());
    } catch (err) {
      if (isTimeout(err)) throw this.timeoutError(timeoutMs);
      throw this.lostError(networkFailure(err).reason, err);
    }
  }

  async readText(response: Response, timeoutMs: number): Promise<string> {
    try {
      return await response.text();
    } catch (err) {
      if (isTimeout(err)) throw this.timeoutError(timeoutMs);
      throw this.lostError(networkFailure(err).reason, err);
    }
  }

  private async errorFrom(response: Response, timeoutMs: number): Promise<FaasError> {
    const text = await this.readText(response, timeoutMs).catch(() => '');
    let body: { error?: unknown; message?: unknown; field?: unknown } | undefined;
    try {
      const parsed = JSON.parse(text) as unknown;
      if (parsed !== null && typeof parsed === 'object') body = parsed as typeof body;
    } catch {
      const snippet = text.trim().slice(0, 200);
      body = { message: snippet === '' ? `the gateway answered HTTP ${response.status}` : `HTTP ${response.status}: ${snippet}` };
    }
    const retryAfter = Number(response.headers.get('retry-after'));
    return errorFromWire(response.status, body, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined);
  }

  /** Waits before retry number `attempt + 1`. */
  backoff(attempt: number): Promise<void> {
    const base = this.options.retryBaseMs * 2 ** attempt;
    const jittered = base / 2 + Math.random() * (base / 2);
    return sleep(Math.min(MAX_BACKOFF_MS, jittered));
  }
}

/**
 * Feeds each JSON line of a streamed (NDJSON) answer to `handle` until `isDone()` says the final event came or the
 * stream ends; turns read failures into the transport's typed errors. Returns whether the final event came.
 */
export async function readNdjsonBody(response: Response, transport: Transport, timeoutMs: number, handle: (value: unknown) => void, isDone: () => boolean): Promise<boolean> {
  const decoder = new NdjsonDecoder();
  const reader = response.body?.getReader();
  if (!reader) return false;
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError')) throw transport.timeoutError(timeoutMs);
        throw transport.lostError(networkFailure(e).reason, e);
      }
      if (chunk.done) break;
      for (const value of decoder.push(chunk.value)) handle(value);
      if (isDone()) break;
    }
    if (!isDone()) for (const value of decoder.end()) handle(value);
  } finally {
    if (isDone()) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
  return isDone();
}
