/**
 * GET /api/v1/containers/:id/stream: the WebSocket protocol. Every client sees every event of the sandbox; the
 * commands it sends are parsed here and carried out by the sandbox service.
 *
 * Slow clients (ClientOutbox below): the gateway never waits for a client, so each client's events go through an
 * outbox. A client that stops reading is disconnected once data has waited for it for FAAS_WS_STALL_MS without the
 * socket taking any of it; a client that reads, however slowly, stays until it falls more than
 * FAAS_WS_MAX_BUFFERED_BYTES behind (the bound on what the gateway holds for one client). Both are closed with code
 * 1013 and a reason saying which; the client reconnects with `?since=` to get what it missed from the history.
 */
import type { FastifyInstance } from 'fastify';
import { type StreamCommand, type StreamEvent, StreamCommand as StreamCommandSchema } from '@faas/protocol';
import type { WebSocket } from 'ws';
import { z } from 'zod';
import { FaasError, errorMessage } from '../errors.js';
import type { Platform } from '../platform/platform.js';
import { shellArgv } from '../platform/sandboxes.js';
import { toSnapshot } from '../platform/snapshots.js';
import { parseWith, validationError } from './errors.js';
import { IdParams } from './routes/containers.js';

export const CLOSE_TOO_SLOW = 1013;

/** `?since=<seq>` replays the events after that one (from the sandbox's recent history) before the live ones. */
const StreamQuery = z.object({
  since: z
    .string({ error: 'give since once: the seq of the last event you received' })
    .regex(/^\d{1,15}$/, 'since must be a whole number: the seq of the last event you received')
    .transform(Number)
    .optional(),
  api_key: z.string().optional(),
});
/**
 * What the outbox hands to the socket at once. `ws` counts in `bufferedAmount` only what the kernel has not taken
 * yet; past this the events wait in the outbox, where a disconnect can drop them (what is handed over can only be
 * sent, and the close frame goes after it).
 */
const SOCKET_HIGH_WATER = 1024 * 1024;

/** What ClientOutbox needs of a socket: `ws`'s WebSocket. */
export interface OutboxSocket {
  /** Bytes handed to the socket that the kernel has not taken yet. */
  readonly bufferedAmount: number;
  /** `cb` runs once the kernel has taken the message (or with an error once the socket is gone). */
  send(data: string, cb: (err?: Error) => void): void;
}

export interface SlowClientLimits {
  /** Unsent bytes (outbox and socket) beyond which a client is disconnected however it reads. */
  maxBufferedBytes: number;
  /** How long data may wait for a client without the socket taking any of it. */
  stallMs: number;
}

/**
 * The events on their way to one client, and the slow-client policy.
 *
 * Progress is what the kernel takes from the socket, seen through the send callbacks: `bufferedAmount` alone
 * cannot tell a client that stopped reading from one that reads slowly, and it misses what the kernel buffers
 * hold (megabytes on loopback), so a byte bound alone either cuts readers under load or lets a paused client
 * stay. Here a client is cut when data has waited `stallMs` with nothing taken (stalled), or when more than
 * `maxBufferedBytes` wait (too far behind, to bound memory). The stall is looked at on a timer, not only when an
 * event is sent, so a client that stops reading near the end of the output is cut too.
 */
export class ClientOutbox {
  private queue: string[] = [];
  private head = 0;
  private queuedBytes = 0;
  /** Messages handed to the socket whose callback has not run yet. */
  private inFlight = 0;
  /** When the socket last took a message, or when a message started waiting while none did. */
  private progressAt = 0;
  private stallTimer: NodeJS.Timeout | undefined;
  /** A stall is being confirmed (see checkStall). */
  private judging = false;
  private done = false;
  private readonly highWater: number;

  constructor(
    private readonly socket: OutboxSocket,
    private readonly limits: SlowClientLimits,
    /** Called once, with a close reason (at most 123 bytes), when the client is too slow. */
    private readonly onSlow: (reason: string) => void,
  ) {
    this.highWater = Math.min(SOCKET_HIGH_WATER, limits.maxBufferedBytes);
  }

  push(data: string): void {
    if (this.done) return;
    if (this.head === this.queue.length && this.socket.bufferedAmount < this.highWater) {
      this.write(data);
      return;
    }
    this.queue.push(data);
    this.queuedBytes += data.length;
    if (this.queuedBytes + this.socket.bufferedAmount > this.limits.maxBufferedBytes) {
      this.fail(`fell more than ${this.limits.maxBufferedBytes} bytes behind; reconnect with ?since=<last seq>`);
    }
  }

  /** Stops the timer and drops what waits (the socket closed, or the client was cut). */
  dispose(): void {
    this.done = true;
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    this.queue = [];
    this.head = 0;
    this.queuedBytes = 0;
  }

  private write(data: string): void {
    if (this.inFlight++ === 0) this.progressAt = Date.now();
    this.socket.send(data, this.onWritten);
    if (this.stallTimer === undefined && !this.judging) this.stallTimer = setTimeout(this.checkStall, this.limits.stallMs);
  }

  private readonly onWritten = (): void => {
    this.inFlight--;
    if (this.done) return;
    this.progressAt = Date.now();
    while (this.head < this.queue.length && this.socket.bufferedAmount < this.highWater) {
      const data = this.queue[this.head]!;
      this.queue[this.head++] = '';
      this.queuedBytes -= data.length;
      this.write(data);
    }
    if (this.head === this.queue.length && this.head > 0) {
      this.queue = [];
      this.head = 0;
    }
  };

  private readonly checkStall = (): void => {
    this.stallTimer = undefined;
    if (this.done || this.inFlight === 0) return;
    if (!this.stalled()) return;
    // Timers run before I/O in a loop turn: after a busy spell, what the kernel took meanwhile is reported in this
    // turn's poll phase. Judge after it, so a gateway short of CPU does not blame its clients.
    this.judging = true;
    setImmediate(() => {
      this.judging = false;
      if (this.done || this.inFlight === 0) return;
      if (this.stalled()) this.fail(`stopped reading (no data accepted for ${this.limits.stallMs} ms); reconnect with ?since=<last seq>`);
    });
  };

  /** True when nothing was taken for stallMs; otherwise arms the timer for when that would be. */
  private stalled(): boolean {
    const waited = Date.now() - this.progressAt;
    if (waited >= this.limits.stallMs) return true;
    this.stallTimer = setTimeout(this.checkStall, this.limits.stallMs - waited);
    return false;
  }

  private fail(reason: string): void {
    this.dispose();
    this.onSlow(reason);
  }
}

export function streamRoutes(app: FastifyInstance, platform: Platform): void {
  const { sandboxes, config, metrics } = platform;

  app.get(
    '/api/v1/containers/:id/stream',
    {
      websocket: true,
      // Answered before the upgrade, so an unknown id is a plain 404 JSON answer.
      preValidation: async (request) => {
        sandboxes.assertOwner(request.tenant, IdParams.parse(request.params).id);
        parseWith(StreamQuery, request.query, 'query');
      },
    },
    (socket: WebSocket, request) => {
      const { id } = IdParams.parse(request.params);
      metrics.streamClients.inc();
      let closed = false;

      const outbox = new ClientOutbox(socket, { maxBufferedBytes: config.wsMaxBufferedBytes, stallMs: config.wsStallMs }, (reason) => {
        closed = true;
        // The close frame follows only what the socket already holds (at most ~1 MiB): the outbox was dropped.
        socket.close(CLOSE_TOO_SLOW, reason);
      });
      const send = (event: StreamEvent) => {
        if (closed || socket.readyState !== socket.OPEN) return;
        outbox.push(JSON.stringify(event));
      };
      const fail = (err: unknown, execId?: string) =>
        send({
          type: 'error',
          message: errorMessage(err),
          code: err instanceof FaasError ? err.code : 'internal_error',
          ...(execId ? { exec_id: execId } : {}),
        });

      const { since } = parseWith(StreamQuery, request.query, 'query');
      const unwatch = sandboxes.watch(id, send, since);
      const unClosed = sandboxes.onClosed(id, () => socket.close(1000, `sandbox ${id} is gone`));
      const heartbeat = setInterval(() => send({ type: 'heartbeat', ts: new Date().toISOString() }), config.heartbeatMs);

      let queue: Promise<void> = Promise.resolve();
      socket.on('message', (raw, isBinary) => {
        let command: StreamCommand;
        try {
          if (isBinary) throw new FaasError('validation_error', 'binary messages are not understood; send JSON text');
          let json: unknown;
          try {
            json = JSON.parse(raw.toString());
          } catch {
            throw new FaasError('invalid_json', 'the message is not JSON; send one JSON command such as {"type":"exec","command":"ls"}');
          }
          command = parseCommand(json);
        } catch (err) {
          fail(err);
          return;
        }
        // One command at a time, in order: a `stdin` sent right after an `exec` must find that exec started.
        queue = queue.then(() => handle(command)).catch((err: unknown) => fail(err, 'exec_id' in command ? command.exec_id : undefined));
      });

      const handle = async (command: StreamCommand): Promise<void> => {
        switch (command.type) {
          case 'exec':
            await sandboxes.startExec(id, {
              argv: shellArgv(command.command),
              env: command.env,
              workingDir: command.working_dir,
              timeoutMs: command.timeout_ms,
              pty: command.pty ? { cols: command.cols ?? 80, rows: command.rows ?? 24 } : undefined,
              interactive: true,
              execId: command.exec_id,
            });
            return;
          case 'stdin':
            sandboxes.writeStdin(id, command.exec_id, command.data, command.eof ?? false);
            return;
          case 'signal':
            sandboxes.signal(id, command.exec_id, command.signal);
            return;
          case 'resize':
            sandboxes.resize(id, command.exec_id, command.cols, command.rows);
            return;
          case 'get_state':
            send({ type: 'custom', name: 'state', data: await sandboxes.sandboxState(id) });
            return;
          case 'checkpoint': {
            const snapshot = await platform.forks.checkpointSandbox(request.tenant, id, command.name);
            send({ type: 'custom', name: 'checkpoint', data: { snapshot_id: snapshot.id, ...toSnapshot(snapshot) } });
            return;
          }
          case 'stop':
            await sandboxes.stop(id);
            return;
        }
      };

      socket.on('close', () => {
        closed = true;
        outbox.dispose();
        clearInterval(heartbeat);
        unwatch();
        unClosed();
        metrics.streamClients.dec();
      });
      socket.on('error', () => socket.terminate());
    },
  );
}

const COMMAND_TYPES = StreamCommandSchema.options.map((o) => o.shape.type.value);

function parseCommand(json: unknown): StreamCommand {
  const type = (json as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !COMMAND_TYPES.includes(type as StreamCommand['type'])) {
    throw new FaasError(
      'validation_error',
      `unknown command type ${JSON.stringify(type ?? null)}; expected one of ${COMMAND_TYPES.join(', ')}`,
      'type',
    );
  }
  const result = StreamCommandSchema.safeParse(json);
  if (!result.success) throw validationError(result.error, `the ${type} command`);
  return result.data;
}
