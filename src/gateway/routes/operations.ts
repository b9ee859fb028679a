/** /health (probes the engine for real), /metrics (Prometheus text) and the OpenAPI document. */
import type { FastifyInstance } from 'fastify';
import type { HealthStatus } from '@faas/protocol';
import type { Platform } from '../../platform/platform.js';
import { requireAdmin } from '../auth.js';
import { openApiDocument } from '../openapi.js';

export function operationRoutes(app: FastifyInstance, platform: Platform): void {
  app.get('/health', async (_request, reply) => {
    const engine = await platform.runtime.health();
    const body: HealthStatus = { status: engine.reachable ? 'ok' : 'unavailable', runtime: platform.runtime.name, engine };
    return reply.status(engine.reachable ? 200 : 503).send(body);
  });

  app.get('/metrics', async (request, reply) => {
    requireAdmin(request);
    const text = await platform.metrics.registry.metrics();
    return reply.header('content-type', platform.metrics.registry.contentType).send(text);
  });

  app.get('/api/v1/openapi.json', async () => openApiDocument());
}
