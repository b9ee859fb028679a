/**
 * `SandboxStream`: the WebSocket of /api/v1/containers/:id/stream as an async iterable of typed events.
 *
 * - Events are buffered between their arrival and their iteration, up to `maxBufferedEvents` (default 10 000).
 *   When a consumer falls that far behind, the socket is closed and the iterator ends, after the buffered events,
 *   by throwing a `ConnectionError` with code `stream_overflow`: events are never dropped silently.
 * - When the connection drops (anything but a close with code 1000 or `close()`), the iterator throws a
 *   `ConnectionError` after the events received before the drop. There is no automatic reconnect: call
 *   `client.stream(id, { since: old.lastSeq })` to replay what was missed (from the gateway's bounded history).
 * - `close()` ends the iterator normally. Leaving a `for await` loop early (`break`) does NOT close the stream, so
 *   it can be iterated again; call `close()` when done.
 */
import { randomUUID } from 'node:crypto';
import { StreamCommand, type StreamEvent } from '@faas/protocol';
import WebSocket from 'ws';
import { ConnectionError, FaasError, TimeoutError, ValidationError, errorFromWire } from './errors.js';
import type { Transport } from './http.js';
import { networkFailure } from './http.js';
import { toStreamEvent } from './ndjson.js';
import { streamExecToWire, validationErrorFrom, type StreamExecOptions } from './wire.js';

export const DEFAULT_MAX_BUFFERED_EVENTS = 10_000;

export interface StreamOptions {
  /** Most events held between arrival and iteration (default 10 000); beyond it the stream fails (`stream_overflow`). */
  maxBufferedEvents?: number;
  /** Deadline for the WebSocket handshake (default: the client's `timeoutMs`). */
  connectTimeoutMs?: number;
  /**
   * Fail the stream with a `ConnectionError` when nothing (event or ping) arrives for this long; detects half-open
   * connections. Default: off. Set it above the gateway's heartbeat interval.
   */
  idleTimeoutMs?: number;
  /**
   * Replay the sandbox's events after this sequence number (e.g. `lastSeq` of a dropped stream) before the live
   * ones. When the gateway's history no longer reaches back that far it sends an `error` event with code
   * `replay_gap` first.
   */
  since?: number;
}

/**
 * Close codes that mean the stream is over on purpose (the gateway closes with 1000 when the sandbox is gone).
 * Anything else, including 1001 (going away) and 1005 (no status: what a shutting-down gateway sends), is a drop.
 */
const CLEAN_CLOSE_CODES = new Set([1000]);

interface Waiter {
  resolve(result: IteratorResult<StreamEvent>): void;
  reject(err: unknown): void;
}

export class SandboxStream implements AsyncIterable<StreamEvent> {
  private readonly queue: StreamEvent[] = [];
  private readonly waiters: Waiter[] = [];
  private readonly maxBuffered: number;
  private ended = false;
  private failure: FaasError | undefined;
  private closedByUs = false;
  private lastSocketError: Error | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly closed: Promise<void>;
  private readonly execWatchers = new Map<string, { resolve(): void; reject(err: FaasError): void }>();
  private seq: number | undefined;

  private constructor(
    private readonly ws: WebSocket,
    private readonly transport: Transport,
    /** The sandbox this stream follows. */
    readonly containerId: string,
    private readonly options: StreamOptions,
  ) {
    this.maxBuffered = options.maxBufferedEvents ?? DEFAULT_MAX_BUFFERED_EVENTS;
    this.closed = new Promise((resolve) => ws.once('close', () => resolve()));
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('ping', () => this.touch());
    ws.on('error', (err) => {
      this.lastSocketError = err;
    });
    ws.on('close', (code, reason) => this.onClose(code, reason.toString()));
    this.touch();
  }

  /** Opens the WebSocket; rejects with a typed error when the gateway refuses (e.g. `NotFoundError`). */
  static async open(transport: Transport, containerId: string, options: StreamOptions = {}): Promise<SandboxStream> {
    const since = options.since;
    if (since !== undefined && (!Number.isInteger(since) || since < 0)) {
      throw new ValidationError('validation_error', 'invalid stream option `since`: must be a non-negative integer', { field: 'since' });
    }
    const query = since === undefined ? '' : `?since=${since}`;
    const url = transport.url(`/containers/${encodeURIComponent(containerId)}/stream${query}`).replace(/^http/, 'ws');
    const timeoutMs = options.connectTimeoutMs ?? transport.options.timeoutMs;
    for (let attempt = 0; ; attempt++) {
      // The stream listens from the start: events may arrive in the same packet as the handshake's answer.
      const ws = new WebSocket(url, { headers: transport.headers(), handshakeTimeout: timeoutMs });
      const stream = new SandboxStream(ws, transport, containerId, options);
      try {
        await opened(ws, transport, timeoutMs);
        return stream;
      } catch (err) {
        const refused = err instanceof ConnectionError && (err.cause as { code?: unknown } | undefined)?.code === 'ECONNREFUSED';
        if (refused && attempt < transport.options.retries) {
          await transport.backoff(attempt);
          continue;
        }
        throw err;
      }
    }
  }

  /** Sends a command (checked against the protocol first: a bad one throws `ValidationError` and is not sent). */
  send(command: StreamCommand): Promise<void> {
    const parsed = StreamCommand.safeParse(command);
    if (!parsed.success) return Promise.reject(validationErrorFrom(parsed.error, 'stream command'));
    return this.sendRaw(parsed.data);
  }

  /**
   * Starts a command in the sandbox; resolves to its exec id, which its stdout/stderr/exit events carry. By default
   * it resolves once the process has started (so `stdin` sent next reaches it) and rejects with the typed error
   * the gateway answers a failed exec with (e.g. `ConflictError` for a stopped sandbox); those events are still
   * delivered to the iterator as well.
   */
  async exec(command: string, options: StreamExecOptions = {}): Promise<string> {
    const execId = options.execId ?? randomUUID();
    const wire = streamExecToWire(command, { ...options, execId });
    if (options.waitForStart === false) {
      await this.sendRaw(wire);
      return execId;
    }
    if (this.execWatchers.has(execId)) throw new FaasError('validation_error', `exec id "${execId}" is already being started`, { field: 'execId' });
    const started = new Promise<void>((resolve, reject) => {
      const ms = this.transport.options.timeoutMs;
      const timer = setTimeout(() => {
        this.execWatchers.delete(execId);
        reject(new TimeoutError('timeout', `exec ${execId} was not reported started within ${ms} ms (client timeoutMs)`));
      }, ms);
      this.execWatchers.set(execId, {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
    });
    try {
      await this.sendRaw(wire);
    } catch (err) {
      this.execWatchers.get(execId)?.resolve();
      this.execWatchers.delete(execId);
      throw err;
    }
    await started;
    return execId;
  }

  /** Closes the stream: the iterator ends normally after the events already received. */
  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.closedByUs = true;
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000, 'client closed');
    const timer = setTimeout(() => this.ws.terminate(), 2_000);
    await this.closed;
    clearTimeout(timer);
  }

  /**
   * The `seq` of the last numbered event received (buffered or iterated), or the `since` it was opened with when
   * none arrived yet; `undefined` before any. Reconnect with `client.stream(id, { since: stream.lastSeq })`.
   */
  get lastSeq(): number | undefined {
    return this.seq ?? this.options.since;
  }

  /** True once the socket is closed (by either side) or failed. */
  get isClosed(): boolean {
    return this.ended;
  }

  [Symbol.asyncIterator](): AsyncIterator<StreamEvent> {
    return {
      next: () => this.next(),
      return: async () => ({ done: true, value: undefined }),
    };
  }

  private next(): Promise<IteratorResult<StreamEvent>> {
    const event = this.queue.shift();
    if (event !== undefined) return Promise.resolve({ done: false, value: event });
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private sendRaw(command: StreamCommand): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ConnectionError('stream_closed', `the stream of sandbox ${this.containerId} is closed`, { url: this.transport.baseUrl }));
    }
    return new Promise((resolve, reject) => {
      this.ws.send(JSON.stringify(command), (err) => {
        if (err) reject(this.transport.lostError(err.message, err));
        else resolve();
      });
    });
  }

  private onMessage(data: WebSocket.RawData, isBinary: boolean): void {
    this.touch();
    if (this.ended) return;
    let event: StreamEvent | undefined;
    try {
      if (isBinary) throw new FaasError('invalid_response', 'the gateway sent a binary WebSocket message; the protocol uses JSON text');
      const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        throw new FaasError('invalid_response', `the gateway sent a WebSocket message that is not JSON: ${text.slice(0, 80)}`);
      }
      event = toStreamEvent(value);
    } catch (err) {
      this.fail(err instanceof FaasError ? err : new FaasError('invalid_response', String(err)));
      return;
    }
    if (event === undefined) return;
    const seq = (event as { seq?: unknown }).seq;
    if (typeof seq === 'number' && (this.seq === undefined || seq > this.seq)) this.seq = seq;
    this.observe(event);
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter.resolve({ done: false, value: event });
      return;
    }
    if (this.queue.length >= this.maxBuffered) {
      this.fail(
        new ConnectionError(
          'stream_overflow',
          `more than ${this.maxBuffered} events arrived without being read; the stream was closed (raise maxBufferedEvents or read faster)`,
          { url: this.transport.baseUrl, reason: 'event buffer full' },
        ),
      );
      return;
    }
    this.queue.push(event);
  }

  private onClose(code: number, reason: string): void {
    clearTimeout(this.idleTimer);
    if (this.ended) return;
    if (this.closedByUs || CLEAN_CLOSE_CODES.has(code)) {
      this.finish();
      return;
    }
    const detail = reason ? `: ${reason}` : code === 1005 ? ': closed without a status, e.g. the gateway is shutting down' : '';
    const why = this.lastSocketError?.message ?? `socket closed (code ${code}${detail})`;
    this.fail(this.transport.lostError(why, this.lastSocketError));
  }

  /** Settles a pending `exec()` from the events of its exec id. */
  private observe(event: StreamEvent): void {
    const execId = 'exec_id' in event ? event.exec_id : undefined;
    if (execId === undefined) return;
    const watcher = this.execWatchers.get(execId);
    if (!watcher) return;
    if (event.type === 'error') {
      this.execWatchers.delete(execId);
      watcher.reject(errorFromWire(0, { error: event.code ?? 'internal_error', message: event.message }));
    } else if (event.type === 'process_event' || event.type === 'stdout' || event.type === 'stderr' || event.type === 'exit') {
      this.execWatchers.delete(execId);
      watcher.resolve();
    }
  }

  private settleExecWatchers(err: FaasError): void {
    for (const watcher of this.execWatchers.values()) watcher.reject(err);
    this.execWatchers.clear();
  }

  /** Ends the iterator with an error after the queued events, and closes the socket. */
  private fail(err: FaasError): void {
    if (this.ended) return;
    this.failure = err;
    this.ended = true;
    clearTimeout(this.idleTimer);
    this.settleExecWatchers(err);
    for (const waiter of this.waiters.splice(0)) waiter.reject(err);
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }

  private finish(): void {
    this.ended = true;
    this.settleExecWatchers(new ConnectionError('stream_closed', `the stream of sandbox ${this.containerId} closed before the exec started`, { url: this.transport.baseUrl }));
    for (const waiter of this.waiters.splice(0)) waiter.resolve({ done: true, value: undefined });
  }

  private touch(): void {
    const ms = this.options.idleTimeoutMs;
    if (!ms || this.ended) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.fail(this.transport.lostError(`nothing received for ${ms} ms (idleTimeoutMs)`)), ms);
    this.idleTimer.unref();
  }
}

function opened(ws: WebSocket, transport: Transport, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err: unknown): void => {
      if (settled) return;
      settled = true;
      ws.off('open', onOpen);
      ws.off('error', onError);
      if (err !== undefined) reject(err);
      else resolve();
    };
    const onOpen = (): void => settle(undefined);
    ws.once('open', onOpen);
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', () => undefined);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: { error?: unknown; message?: unknown; field?: unknown } | undefined;
        try {
          body = JSON.parse(text) as typeof body;
        } catch {
          body = { message: `the gateway refused the WebSocket with HTTP ${res.statusCode}${text ? `: ${text.slice(0, 200)}` : ''}` };
        }
        settle(errorFromWire(res.statusCode ?? 0, body ?? undefined));
        ws.terminate();
      });
    });
    const onError = (err: Error): void => {
      if (/timeout/i.test(err.message) && /handshake/i.test(err.message)) {
        settle(transport.timeoutError(timeoutMs));
        return;
      }
      settle(transport.connectionError(networkFailure(err).reason, 'connection_error', err));
    };
    ws.once('error', onError);
  });
}
