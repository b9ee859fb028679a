/**
 * /api/v1/images: the images sandboxes can run (built-ins and templates) and user templates built from a
 * Dockerfile. With Accept: application/x-ndjson the build log streams as ImageBuildEvent lines; everything a
 * caller can get wrong is checked before the first line, so it is still answered with a 4xx status.
 */
import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BuildImageRequest, type ImageBuildEvent, ImageName, MAX_TEMPLATE_CONTEXT_BYTES } from '@faas/protocol';
import { z } from 'zod';
import { FaasError, errorMessage } from '../../errors.js';
import type { Platform } from '../../platform/platform.js';
import { parseWith } from '../errors.js';
import { wantsNdjson } from '../ndjson.js';

/** Room for the base64 of the largest context, plus the Dockerfile and JSON around it. */
export const IMAGE_BODY_LIMIT = Math.ceil((MAX_TEMPLATE_CONTEXT_BYTES * 4) / 3) + 4 * 1024 * 1024;

const NameParams = z.object({ name: ImageName });

/** The caller's tenant once authentication has set it, `default` before. */
const tenantOf = (request: FastifyRequest): string => (request as { tenant?: string }).tenant || 'default';

export function imageRoutes(app: FastifyInstance, platform: Platform): void {
  const templates = () => platform.templates;

  app.get('/api/v1/images', async (request) => ({ images: await templates().listAll(tenantOf(request)) }));

  app.post('/api/v1/images', { bodyLimit: IMAGE_BODY_LIMIT }, async (request, reply) => {
    const body = parseWith(BuildImageRequest, request.body);
    const service = templates();
    const prepared = await service.prepare(body, tenantOf(request));
    if (!wantsNdjson(request)) return reply.status(201).send(await service.run(prepared));
    const out = new PassThrough();
    const emit = (event: ImageBuildEvent) => out.write(`${JSON.stringify(event)}\n`);
    void reply.status(200).header('content-type', 'application/x-ndjson; charset=utf-8').header('cache-control', 'no-store').send(out);
    try {
      emit({ type: 'done', image: await service.run(prepared, emit) });
    } catch (err) {
      emit({ type: 'error', code: err instanceof FaasError ? err.code : 'internal_error', message: errorMessage(err) });
    }
    out.end();
    return reply;
  });

  app.delete('/api/v1/images/:name', async (request, reply) => {
    const { name } = parseWith(NameParams, request.params, 'path');
    // Finished executions and warm pools may still hold sandboxes of the image: let them go first, so only
    // sandboxes somebody really runs can make the removal a 409.
    await platform.executor.drain();
    await platform.pools.evictImage(name);
    await templates().remove(name, tenantOf(request));
    return reply.status(204).send();
  });
}
