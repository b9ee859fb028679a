/**
 * The HTTP and WebSocket gateway: parses requests into calls on the platform and answers in the protocol's
 * shapes. It holds no state of its own.
 */
import fastifyWebsocket from '@fastify/websocket';
import Fastify, { type FastifyInstance } from 'fastify';
import { LIMITS } from '@faas/protocol';
import { type GatewayConfig, loadConfig } from '../config.js';
import { type Platform, createPlatform } from '../platform/platform.js';
import { installErrorHandling } from './errors.js';
import { cacheRoutes } from './routes/caches.js';
import { containerRoutes } from './routes/containers.js';
import { executeRoutes } from './routes/execute.js';
import { imageRoutes } from './routes/images.js';
import { operationRoutes } from './routes/operations.js';
import { poolRoutes } from './routes/pools.js';
import { streamRoutes } from './stream.js';

/** Room for the largest stdin plus the rest of a request. */
const BODY_LIMIT = LIMITS.maxStdinBytes + 4 * 1024 * 1024;

export async function buildGateway(platform: Platform): Promise<FastifyInstance> {
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
  streamRoutes(app, platform);
  poolRoutes(app, platform);
  operationRoutes(app, platform);
  imageRoutes(app, platform);
  cacheRoutes(app, platform);
  return app;
}

export interface RunningGateway {
  app: FastifyInstance;
  platform: Platform;
  url: string;
  close(): Promise<void>;
}

export async function startGateway(config: GatewayConfig = loadConfig()): Promise<RunningGateway> {
  const platform = await createPlatform(config);
  let app: FastifyInstance;
  try {
    app = await buildGateway(platform);
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    await platform.close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  let closing: Promise<void> | undefined;
  return {
    app,
    platform,
    url: `http://${host}:${port}`,
    close() {
      closing ??= (async () => {
        await app.close();
        await platform.close();
      })();
      return closing;
    },
  };
}
