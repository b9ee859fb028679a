/** /api/v1/tenants: the admin's API for tenants, their keys and quotas. */
import type { FastifyInstance } from 'fastify';
import { type ApiKey, CreateTenantRequest, type Tenant, TenantQuotas } from '@faas/protocol';
import { z } from 'zod';
import type { Platform } from '../../platform/platform.js';
import type { KeyRecord, TenantRecord } from '../../platform/tenants.js';
import { requireAdmin } from '../auth.js';
import { parseWith } from '../errors.js';

const TenantParams = z.object({ id: z.string().min(1).max(64) });
const KeyParams = z.object({ id: z.string().min(1).max(64), keyId: z.string().min(1).max(64) });

function toTenant(t: TenantRecord): Tenant {
  return { id: t.id, name: t.name, quotas: t.quotas, created_at: t.createdAt };
}

function toKey(k: KeyRecord): ApiKey {
  return { id: k.id, tenant_id: k.tenantId, prefix: k.prefix, created_at: k.createdAt, revoked_at: k.revokedAt, last_used_at: k.lastUsedAt };
}

export function tenantRoutes(app: FastifyInstance, platform: Platform): void {
  const { tenants } = platform;
  app.addHook('onRequest', async (request) => {
    if (request.url.startsWith('/api/v1/tenants')) requireAdmin(request);
  });

  app.post('/api/v1/tenants', async (request, reply) => {
    const body = parseWith(CreateTenantRequest, request.body);
    return reply.status(201).send(toTenant(tenants.createTenant(body.name, body.quotas ?? {})));
  });

  app.get('/api/v1/tenants', async () => ({ tenants: tenants.listTenants().map(toTenant) }));

  app.get('/api/v1/tenants/:id', async (request) => toTenant(tenants.requireTenant(parseWith(TenantParams, request.params, 'path').id)));

  app.put('/api/v1/tenants/:id/quotas', async (request) => {
    const { id } = parseWith(TenantParams, request.params, 'path');
    return toTenant(tenants.setQuotas(id, parseWith(TenantQuotas, request.body)));
  });

  app.post('/api/v1/tenants/:id/keys', async (request, reply) => {
    const { id } = parseWith(TenantParams, request.params, 'path');
    const { record, key } = tenants.createKey(id);
    return reply.status(201).send({ ...toKey(record), key });
  });

  app.get('/api/v1/tenants/:id/keys', async (request) => ({ keys: tenants.listKeys(parseWith(TenantParams, request.params, 'path').id).map(toKey) }));

  app.delete('/api/v1/tenants/:id/keys/:keyId', async (request) => {
    const { id, keyId } = parseWith(KeyParams, request.params, 'path');
    return toKey(tenants.revokeKey(id, keyId));
  });
}
