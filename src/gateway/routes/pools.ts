/** /api/v1/prewarm and /api/v1/pools: warm pools for fast ephemeral executions. */
import type { FastifyInstance } from 'fastify';
import { DEFAULT_IMAGE, DEFAULT_WORKING_DIR, LIMITS, PrewarmRequest } from '@faas/protocol';
import type { Platform } from '../../platform/platform.js';
import { parseWith } from '../errors.js';

export function poolRoutes(app: FastifyInstance, platform: Platform): void {
  app.post('/api/v1/prewarm', async (request) => {
    const body = parseWith(PrewarmRequest, request.body);
    return platform.pools.prewarm(
      {
        tenant: request.tenant,
        image: body.image ?? DEFAULT_IMAGE,
        workingDir: body.working_dir ?? DEFAULT_WORKING_DIR,
        memoryMb: body.memory_mb,
        cpuCores: body.cpu_cores,
        pidsLimit: body.pids_limit,
        network: body.network ?? 'none',
        readOnly: body.read_only,
      },
      body.count,
      (body.wait_s ?? LIMITS.defaultPrewarmWaitS) * 1000,
    );
  });

  app.get('/api/v1/pools', async (request) => ({ pools: platform.pools.list(request.tenant) }));
}
