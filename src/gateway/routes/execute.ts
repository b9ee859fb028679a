/** POST /api/v1/execute: run a command in the mode asked for. */
import type { FastifyInstance } from 'fastify';
import { ExecuteRequest } from '@faas/protocol';
import type { Platform } from '../../platform/platform.js';
import { parseWith } from '../errors.js';
import { streamNdjson, wantsNdjson } from '../ndjson.js';

export function executeRoutes(app: FastifyInstance, platform: Platform): void {
  app.post('/api/v1/execute', async (request, reply) => {
    const body = parseWith(ExecuteRequest, request.body);
    platform.executor.validate(body);
    if (wantsNdjson(request)) return streamNdjson(reply, (emit) => platform.executor.execute(request.tenant, body, emit));
    return platform.executor.execute(request.tenant, body);
  });
}
