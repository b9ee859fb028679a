/**
 * GET /api/v1/containers/:id/stream: the WebSocket protocol. Every client sees every event of the sandbox; the
 * commands it sends are parsed here and carried out by the sandbox service.
 *
 * Slow clients: each client's unsent bytes are bounded (FAAS_WS_MAX_BUFFERED_BYTES, 16 MiB by default). A client
 * that stays past the bound for 2 s, or gets 4 times past it, is disconnected with close code 1013 and a reason
 * saying so; others are never held up and the gateway's memory never grows without bound.
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
  since: z.coerce.number().int().min(0).optional(),
  api_key: z.string().optional(),
});
/** How long a client may stay past the bound, and how far past it it may ever get. */
const SLOW_GRACE_MS = 2000;
const SLOW_HARD_FACTOR = 4;

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

      let behindSince = 0;
      const send = (event: StreamEvent) => {
        if (closed || socket.readyState !== socket.OPEN) return;
        const behind = socket.bufferedAmount;
        const now = Date.now();
        if (behind <= config.wsMaxBufferedBytes) behindSince = 0;
        else if (behindSince === 0) behindSince = now;
        // A burst may pass the bound for a moment; staying past it, or passing it far, is a client that cannot keep up.
        if (behind > SLOW_HARD_FACTOR * config.wsMaxBufferedBytes || (behindSince !== 0 && now - behindSince > SLOW_GRACE_MS)) {
          closed = true;
          socket.close(CLOSE_TOO_SLOW, `client fell more than ${config.wsMaxBufferedBytes} bytes behind; reconnect`);
          return;
        }
        socket.send(JSON.stringify(event));
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
