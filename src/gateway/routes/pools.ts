/** /api/v1/prewarm and /api/v1/pools: warm pools for fast ephemeral executions. */
import type { FastifyInstance } from 'fastify';
import { DEFAULT_IMAGE, DEFAULT_WORKING_DIR, LIMITS, PrewarmRequest } from '@faas/protocol';
import { FaasError } from '../../errors.js';
import type { Platform } from '../../platform/platform.js';
import { parseWith } from '../errors.js';

export function poolRoutes(app: FastifyInstance, platform: Platform): void {
  app.post('/api/v1/prewarm', async (request) => {
    const body = parseWith(PrewarmRequest, request.body);
    // The tenant's ceilings apply as they do to executions (403 above them), and fill in the limits left out:
    // the pool then has the shape the tenant's executions will ask for, so they find it.
    const limits = platform.quotas.limits(request.tenant, { memory_mb: body.memory_mb, cpu_cores: body.cpu_cores, pids_limit: body.pids_limit });
    const maxSandboxes = platform.tenants.quotasOf(request.tenant).max_sandboxes;
    if (maxSandboxes !== undefined && body.count > maxSandboxes) {
      throw new FaasError(
        'forbidden',
        `count ${body.count} is above this tenant's ${maxSandboxes} sandboxes at once (quota max_sandboxes); ask for at most ${maxSandboxes}`,
        'count',
      );
    }
    return platform.pools.prewarm(
      {
        tenant: request.tenant,
        image: body.image ?? DEFAULT_IMAGE,
        workingDir: body.working_dir ?? DEFAULT_WORKING_DIR,
        memoryMb: limits.memory_mb,
        cpuCores: limits.cpu_cores,
        pidsLimit: limits.pids_limit,
        network: body.network ?? 'none',
        readOnly: body.read_only,
      },
      body.count,
      (body.wait_s ?? LIMITS.defaultPrewarmWaitS) * 1000,
    );
  });

  app.get('/api/v1/pools', async (request) => ({ pools: platform.pools.list(request.tenant) }));
}
