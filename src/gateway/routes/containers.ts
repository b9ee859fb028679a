/** /api/v1/containers: persistent sandboxes and the commands run in them. */
import type { FastifyInstance } from 'fastify';
import { ContainerExecRequest, CreateContainerRequest } from '@faas/protocol';
import { z } from 'zod';
import { toExecuteResult } from '../../platform/executor.js';
import type { Platform } from '../../platform/platform.js';
import { parseWith } from '../errors.js';
import { streamNdjson, wantsNdjson } from '../ndjson.js';

export const IdParams = z.object({ id: z.string().min(1).max(128) });

export function containerRoutes(app: FastifyInstance, platform: Platform): void {
  const { sandboxes } = platform;
  const idOf = (params: unknown) => parseWith(IdParams, params, 'path').id;

  app.post('/api/v1/containers', async (request, reply) => {
    const body = parseWith(CreateContainerRequest, request.body ?? {});
    return reply.status(201).send(await sandboxes.create(body));
  });

  app.get('/api/v1/containers', async () => ({ containers: sandboxes.list() }));

  app.get('/api/v1/containers/:id', async (request) => sandboxes.get(idOf(request.params)));

  app.post('/api/v1/containers/:id/exec', async (request, reply) => {
    const id = idOf(request.params);
    const body = parseWith(ContainerExecRequest, request.body);
    sandboxes.get(id);
    if (wantsNdjson(request)) return streamNdjson(reply, (emit) => sandboxes.exec(id, body, emit));
    const outcome = await sandboxes.exec(id, body);
    return toExecuteResult(outcome.execId, 'persistent', outcome, id);
  });

  app.post('/api/v1/containers/:id/stop', async (request) => sandboxes.stop(idOf(request.params)));

  app.post('/api/v1/containers/:id/resume', async (request) => sandboxes.resume(idOf(request.params)));

  app.delete('/api/v1/containers/:id', async (request, reply) => {
    await sandboxes.delete(idOf(request.params));
    return reply.status(204).send();
  });
}
