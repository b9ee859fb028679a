/** /api/v1/caches: the shared dependency caches of the caller's tenant, their sizes, and purging one. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Platform } from '../../platform/platform.js';
import { parseWith } from '../errors.js';

const NameParams = z.object({ name: z.string().min(1).max(64) });

export function cacheRoutes(app: FastifyInstance, platform: Platform): void {
  const caches = () => platform.caches;

  app.get('/api/v1/caches', async (request) => ({ caches: await caches().list(request.tenant) }));

  app.delete('/api/v1/caches/:name', async (request) => {
    const { name } = parseWith(NameParams, request.params, 'path');
    return caches().purge(request.tenant, name);
  });
}
