/**
 * Snapshots, checkpoints, forks and the result cache:
 * /api/v1/snapshots[/:id], /api/v1/containers/:id/checkpoint, /api/v1/fork, /api/v1/executions/:id/fork,
 * /api/v1/cache[/:key].
 */
import type { FastifyInstance } from 'fastify';
import { CheckpointRequest, ForkRequest } from '@faas/protocol';
import { z } from 'zod';
import { FaasError } from '../../errors.js';
import type { Platform } from '../../platform/platform.js';
import { toSnapshot } from '../../platform/snapshots.js';
import { parseWith } from '../errors.js';
import { IdParams } from './containers.js';

const ForceQuery = z.object({ force: z.enum(['true', 'false', '1', '0']).optional() });
const KeyParams = z.object({ key: z.string().regex(/^[0-9a-f]{64}$/, 'a cache key is 64 hex digits') });
const ClearQuery = z.object({ image: z.string().min(1).max(512).optional() });

export function snapshotRoutes(app: FastifyInstance, platform: Platform): void {
  const { snapshots, forks, resultCache } = platform;

  app.get('/api/v1/snapshots', async (request) => ({ snapshots: snapshots.list(request.tenant).map(toSnapshot) }));

  app.get('/api/v1/snapshots/:id', async (request) => toSnapshot(await snapshots.get(request.tenant, parseWith(IdParams, request.params, 'path').id)));

  app.delete('/api/v1/snapshots/:id', async (request, reply) => {
    const { id } = parseWith(IdParams, request.params, 'path');
    const { force } = parseWith(ForceQuery, request.query ?? {}, 'query');
    await snapshots.delete(request.tenant, id, force === 'true' || force === '1');
    return reply.status(204).send();
  });

  app.post('/api/v1/containers/:id/checkpoint', async (request, reply) => {
    const { id } = parseWith(IdParams, request.params, 'path');
    const body = parseWith(CheckpointRequest, request.body ?? {});
    return reply.status(201).send(toSnapshot(await forks.checkpointSandbox(request.tenant, id, body.name)));
  });

  app.post('/api/v1/fork', async (request) => forks.fork(request.tenant, parseWith(ForkRequest, request.body)));

  app.post('/api/v1/executions/:id/fork', async (request) => {
    const { id } = parseWith(IdParams, request.params, 'path');
    const body = (request.body ?? {}) as Record<string, unknown>;
    if (body && typeof body === 'object' && 'parent' in body && body.parent !== id) {
      throw new FaasError('validation_error', `the path names execution ${id}; leave \`parent\` out of the body`, 'parent');
    }
    return forks.fork(request.tenant, parseWith(ForkRequest, { ...body, parent: id }));
  });

  app.delete('/api/v1/cache/:key', async (request, reply) => {
    const { key } = parseWith(KeyParams, request.params, 'path');
    if (!resultCache.delete(request.tenant, key)) throw new FaasError('not_found', `no cached result with key "${key}"`);
    return reply.status(204).send();
  });

  app.delete('/api/v1/cache', async (request) => {
    const { image } = parseWith(ClearQuery, request.query ?? {}, 'query');
    return { deleted: resultCache.clear(request.tenant, image) };
  });
}
