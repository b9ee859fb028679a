/**
 * The HTTP and WebSocket gateway: parses requests into calls on the platform and answers in the protocol's
 * shapes. It holds no state of its own.
 */
import fastifyWebsocket from '@fastify/websocket';
import Fastify, { type FastifyInstance } from 'fastify';
import { LIMITS, StreamCommand } from '@faas/protocol';
import { type GatewayConfig, loadConfig } from '../config.js';
import { type Platform, createPlatform } from '../platform/platform.js';
import { type AuthSettings, installAuth, resolveAuth } from './auth.js';
import { installErrorHandling } from './errors.js';
import { OPERATIONS } from './openapi.js';
import { cacheRoutes } from './routes/caches.js';
import { containerRoutes } from './routes/containers.js';
import { executeRoutes } from './routes/execute.js';
import { fileRoutes } from './routes/files.js';
import { imageRoutes } from './routes/images.js';
import { operationRoutes } from './routes/operations.js';
import { poolRoutes } from './routes/pools.js';
import { tenantRoutes } from './routes/tenants.js';
import { snapshotRoutes } from './routes/snapshots.js';
import { streamRoutes } from './stream.js';

/** How long WebSocket clients get to take their close frame before their sockets are cut. */
const SHUTDOWN_GRACE_MS = 2000;

/** Room for the largest stdin and input files (as base64) plus the rest of a request. */
const BODY_LIMIT = LIMITS.maxStdinBytes + Math.ceil((LIMITS.maxInputFileBytes * 4) / 3) + 4 * 1024 * 1024;

export async function buildGateway(platform: Platform, auth: AuthSettings): Promise<FastifyInstance> {
  const app = Fastify({
    logger: platform.config.logLevel === 'silent' ? false : { level: platform.config.logLevel },
    bodyLimit: BODY_LIMIT,
    // Long executions keep their request open; the execution's own timeout bounds it.
    requestTimeout: 0,
    // On shutdown, do not wait for long executions: the platform kills and records them.
    forceCloseConnections: true,
  });
  // An empty JSON body (POST .../stop with a Content-Type) means "no options", not an error.
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: BODY_LIMIT }, (_request, body, done) => {
    if (body === '' || (typeof body === 'string' && body.trim() === '')) return done(null, undefined);
    try {
      done(null, JSON.parse(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  installErrorHandling(app);
  installAuth(app, platform.tenants, auth);
  await app.register(fastifyWebsocket, {
    options: { maxPayload: LIMITS.maxStdinBytes + 64 * 1024 },
    // 1001 "going away" lets clients tell a gateway shutdown from a deliberate close (1000).
    preClose(this: FastifyInstance, done: () => void) {
      for (const client of this.websocketServer.clients) client.close(1001, 'the gateway is shutting down');
      this.websocketServer.close(done);
    },
  });
  executeRoutes(app, platform);
  containerRoutes(app, platform);
  fileRoutes(app, platform);
  streamRoutes(app, platform);
  poolRoutes(app, platform);
  tenantRoutes(app, platform);
  operationRoutes(app, platform);
  imageRoutes(app, platform);
  cacheRoutes(app, platform);
  snapshotRoutes(app, platform);
  compileRequestSchemas();
  return app;
}

/**
 * zod builds a schema's parser on its first use, ~3 ms for the execute request: done at start, not on the first
 * request of each kind.
 */
function compileRequestSchemas(): void {
  for (const schema of [...OPERATIONS.flatMap((op) => [op.body, op.query]), StreamCommand]) schema?.safeParse({});
}

export interface RunningGateway {
  app: FastifyInstance;
  platform: Platform;
  url: string;
  /** The admin key made on this first start with keys on (shown once, only its hash is kept), or null. */
  generatedAdminKey: string | null;
  close(): Promise<void>;
}

export async function startGateway(config: GatewayConfig = loadConfig()): Promise<RunningGateway> {
  const platform = await createPlatform(config);
  let app: FastifyInstance;
  let generatedAdminKey: string | null;
  try {
    const auth = resolveAuth(config, platform.tenants);
    generatedAdminKey = auth.generatedAdminKey;
    app = await buildGateway(platform, auth.settings);
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    await platform.close();
    throw err;
  }
  // Sockets taken over by an upgrade are not the HTTP server's to close any more; a client that keeps one open
  // (a refused upgrade it never hung up) must not hold the shutdown, so those are destroyed after a grace period.
  const upgraded = new Set<import('node:net').Socket>();
  app.server.on('upgrade', (_request, socket: import('node:net').Socket) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
  });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  let closing: Promise<void> | undefined;
  return {
    app,
    platform,
    url: `http://${host}:${port}`,
    generatedAdminKey,
    close() {
      closing ??= (async () => {
        const force = setTimeout(() => {
          for (const socket of upgraded) socket.destroy();
        }, SHUTDOWN_GRACE_MS);
        try {
          await app.close();
        } finally {
          clearTimeout(force);
        }
        await platform.close();
      })();
      return closing;
    },
  };
}
