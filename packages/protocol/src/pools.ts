/** Warm pools: sandboxes started ahead of time for ephemeral executions of one image and resource shape. */
import { z } from 'zod';
import { LIMITS } from './limits.js';
import { ImageField, NetworkMode, ResourceFields, workingDirField } from './rest.js';

export const PrewarmRequest = z.strictObject({
  image: ImageField.optional().describe('Default faas/busybox:latest.'),
  count: z.number().int().min(0).describe('Ready sandboxes to keep; 0 empties the pool.'),
  wait_s: z
    .number()
    .min(0)
    .max(LIMITS.maxPrewarmWaitS)
    .optional()
    .describe(`Seconds to wait for the pool to be full before answering (default ${LIMITS.defaultPrewarmWaitS}; 0 answers at once). The answer says how many are ready.`),
  working_dir: workingDirField.optional(),
  ...ResourceFields,
});
export type PrewarmRequest = z.infer<typeof PrewarmRequest>;

export const PoolInfo = z.object({
  key: z.string(),
  image: z.string(),
  working_dir: z.string(),
  memory_mb: z.number().nullable(),
  cpu_cores: z.number().nullable(),
  pids_limit: z.number().nullable(),
  network: NetworkMode,
  read_only: z.boolean(),
  size: z.number().describe('Ready sandboxes the pool aims to keep.'),
  ready: z.number(),
  creating: z.number(),
  in_use: z.number(),
  hits: z.number(),
  misses: z.number(),
  error: z.string().nullable().describe('Why the pool cannot fill (e.g. its image is missing), or null.'),
});
export type PoolInfo = z.infer<typeof PoolInfo>;

export const PoolList = z.object({ pools: z.array(PoolInfo) });
export type PoolList = z.infer<typeof PoolList>;
