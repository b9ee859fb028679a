/** /api/v1/containers: persistent sandboxes and the commands run in them. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ContainerExecRequest, CreateContainerRequest } from '@faas/protocol';
import { z } from 'zod';
import { toExecuteResult } from '../../platform/executor.js';
import type { Platform } from '../../platform/platform.js';
import { parseWith } from '../errors.js';
import { streamNdjson, wantsNdjson } from '../ndjson.js';

export const IdParams = z.object({ id: z.string().min(1).max(128) });

export function containerRoutes(app: FastifyInstance, platform: Platform): void {
  const { sandboxes } = platform;
  /** The id from the path, once the caller's tenant is known to own it (another tenant's id is a 404). */
  const owned = (request: FastifyRequest) => {
    const { id } = parseWith(IdParams, request.params, 'path');
    sandboxes.assertOwner(request.tenant, id);
    return id;
  };

  app.post('/api/v1/containers', async (request, reply) => {
    const body = parseWith(CreateContainerRequest, request.body ?? {});
    if (body.checkpoint !== undefined) {
      // Starts with the snapshot's files; a failed restore leaves no sandbox behind.
      const snapshot = await platform.snapshots.get(request.tenant, body.checkpoint);
      const image = await platform.snapshots.imageFor(snapshot, body.image);
      return reply.status(201).send(await sandboxes.create(request.tenant, { ...body, image }, { apply: (id) => platform.snapshots.restore(snapshot, id) }));
    }
    return reply.status(201).send(await sandboxes.create(request.tenant, body));
  });

  app.get('/api/v1/containers', async (request) => ({ containers: sandboxes.list(request.tenant) }));

  app.get('/api/v1/containers/:id', async (request) => sandboxes.get(request.tenant, parseWith(IdParams, request.params, 'path').id));

  app.post('/api/v1/containers/:id/exec', async (request, reply) => {
    const id = owned(request);
    const body = parseWith(ContainerExecRequest, request.body);
    if (wantsNdjson(request)) return streamNdjson(reply, (emit) => sandboxes.exec(id, body, emit));
    const outcome = await sandboxes.exec(id, body);
    return toExecuteResult(outcome.execId, 'persistent', outcome, id);
  });

  app.post('/api/v1/containers/:id/stop', async (request) => sandboxes.stop(owned(request)));

  app.post('/api/v1/containers/:id/resume', async (request) => sandboxes.resume(owned(request)));

  app.delete('/api/v1/containers/:id', async (request, reply) => {
    await sandboxes.delete(owned(request));
    return reply.status(204).send();
  });
}
