/**
 * Snapshots (a sandbox's filesystem changes against its image), forks and the result cache: REST bodies of
 * /api/v1/snapshots, /api/v1/fork, /api/v1/containers/:id/checkpoint and /api/v1/cache.
 */
import { z } from 'zod';
import { ImageField, ProcessFields, ResourceFields } from './rest.js';

/** Most variants one fork may ask for. */
export const MAX_FORK_VARIANTS = 16;

const snapshotId = z.string().min(1).max(128);

export const Snapshot = z.object({
  id: z.string().describe('Snapshot id (`snap_…`); the same on every gateway sharing the storage tier.'),
  name: z.string().nullable(),
  image: z.string().describe('The image (tag) of the sandbox it was taken from.'),
  image_id: z.string().describe('The immutable id of that image.'),
  parent: z.string().nullable().describe('The snapshot the sandbox had been restored from, or null.'),
  source: z.string().nullable().describe('The sandbox or execution it was taken from.'),
  files: z.number().describe('Changed paths recorded (added or modified entries, plus deletions).'),
  deletions: z.number().describe('Paths deleted against the image.'),
  size_bytes: z.number().describe('Bytes of file content in the change set.'),
  logical_bytes: z.number().describe('Bytes of the change-set archive.'),
  stored_bytes: z.number().describe('Bytes the archive occupies in storage (compressed, chunks shared with other snapshots counted).'),
  created_at: z.string().describe('ISO 8601.'),
});
export type Snapshot = z.infer<typeof Snapshot>;

export const SnapshotList = z.object({ snapshots: z.array(Snapshot) });
export type SnapshotList = z.infer<typeof SnapshotList>;

export const CheckpointRequest = z.strictObject({ name: z.string().min(1).max(256).optional() });
export type CheckpointRequest = z.infer<typeof CheckpointRequest>;

export const ForkVariant = z
  .strictObject({ ...ProcessFields })
  .refine((b) => (b.command === undefined) !== (b.argv === undefined), { message: 'each variant needs exactly one of `command` or `argv`', path: ['command'] });
export type ForkVariant = z.infer<typeof ForkVariant>;

export const ForkRequest = z
  .strictObject({
    parent: snapshotId.describe('An execution id (within its retention window), a snapshot id, or a live sandbox id.'),
    ...ProcessFields,
    ...ResourceFields,
    variants: z
      .array(ForkVariant)
      .min(1, 'a fork needs at least one variant')
      .max(MAX_FORK_VARIANTS, `a fork may have at most ${MAX_FORK_VARIANTS} variants`)
      .optional()
      .describe(`Commands run in parallel, each on its own copy of the parent's state (1 to ${MAX_FORK_VARIANTS}).`),
    image: ImageField.optional().describe("Must be the parent's image when given (a check); variants always run on it."),
    keep: z.boolean().optional().describe('Keep every variant as a live persistent sandbox (`container_id` in its result).'),
  })
  .refine((b) => (b.variants !== undefined) !== (b.command !== undefined || b.argv !== undefined), {
    message: 'give either `command`/`argv` (one variant) or `variants`, not both and not neither',
    path: ['variants'],
  })
  .refine((b) => !(b.command !== undefined && b.argv !== undefined), { message: 'give `command` or `argv`, not both', path: ['command'] });
export type ForkRequest = z.infer<typeof ForkRequest>;

export const ForkVariantResult = z.union([
  z.object({
    status: z.literal('ok'),
    index: z.number(),
    parent: z.string(),
    snapshot_id: z.string().describe('The state the variant ended in.'),
    result: z.record(z.string(), z.unknown()).describe('An ExecuteResult.'),
  }),
  z.object({ status: z.literal('error'), index: z.number(), parent: z.string(), error: z.string(), message: z.string() }),
]);
export type ForkVariantResult = z.infer<typeof ForkVariantResult>;

export const ForkResult = z.object({
  parent: z.string().describe('The parent as asked for.'),
  parent_snapshot_id: z.string().describe('The snapshot every variant started from.'),
  variants: z.array(ForkVariantResult),
});
export type ForkResult = z.infer<typeof ForkResult>;

export const CacheClearResult = z.object({ deleted: z.number().describe('Cached results removed.') });
export type CacheClearResult = z.infer<typeof CacheClearResult>;
