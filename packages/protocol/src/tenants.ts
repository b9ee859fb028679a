/** Tenants, their API keys and quotas (admin API). */
import { z } from 'zod';
import { LIMITS } from './limits.js';

export const TenantQuotas = z
  .strictObject({
    max_sandboxes: z.number().int().min(0).optional().describe('Sandboxes running at once (persistent ones plus ephemeral executions under way).'),
    max_memory_mb: z.number().int().min(LIMITS.minMemoryMb).max(LIMITS.maxMemoryMb).optional().describe('Ceiling and default of memory_mb per sandbox.'),
    max_cpu_cores: z.number().min(LIMITS.minCpuCores).max(LIMITS.maxCpuCores).optional().describe('Ceiling and default of cpu_cores per sandbox.'),
    max_pids: z.number().int().min(1).max(LIMITS.maxPidsLimit).optional().describe('Ceiling and default of pids_limit per sandbox.'),
    executions_per_minute: z.number().int().min(0).optional().describe('Executions and execs started per rolling minute.'),
    snapshot_bytes: z.number().int().min(0).optional().describe('Stored bytes of snapshots.'),
  })
  .describe('Absent fields mean no limit.');
export type TenantQuotas = z.infer<typeof TenantQuotas>;

export const CreateTenantRequest = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'name must be 1-63 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit'),
  quotas: TenantQuotas.optional(),
});
export type CreateTenantRequest = z.infer<typeof CreateTenantRequest>;

export const Tenant = z.object({ id: z.string(), name: z.string(), quotas: TenantQuotas, created_at: z.string() });
export type Tenant = z.infer<typeof Tenant>;
export const TenantList = z.object({ tenants: z.array(Tenant) });

export const ApiKey = z.object({
  id: z.string(),
  tenant_id: z.string(),
  prefix: z.string().describe('The start of the key, to recognise it.'),
  created_at: z.string(),
  revoked_at: z.string().nullable(),
  last_used_at: z.string().nullable(),
});
export type ApiKey = z.infer<typeof ApiKey>;
export const CreatedApiKey = ApiKey.extend({ key: z.string().describe('The secret: shown once, store it now.') });
export type CreatedApiKey = z.infer<typeof CreatedApiKey>;
export const ApiKeyList = z.object({ keys: z.array(ApiKey) });
