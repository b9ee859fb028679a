/**
 * Images (built-in and user templates) and shared dependency caches: the bodies of /api/v1/images and
 * /api/v1/caches.
 */
import { z } from 'zod';
import { IMAGE_REFERENCE } from './image-reference.js';
import { NetworkMode } from './rest.js';

/** Largest build context accepted (the decoded tar, or the sum of `files`). */
export const MAX_TEMPLATE_CONTEXT_BYTES = 64 * 1024 * 1024;
/** Largest Dockerfile accepted. */
export const MAX_DOCKERFILE_BYTES = 1024 * 1024;

export const ImageName = z
  .string()
  .min(1)
  .max(255)
  .regex(IMAGE_REFERENCE, 'name must be a Docker image reference such as "myteam/tools:1" (lower case, no digest)')
  .describe('Image reference; `:latest` is added when there is no tag.');

export const BuildImageRequest = z
  .strictObject({
    name: ImageName,
    dockerfile: z.string().min(1, 'dockerfile must not be empty').max(MAX_DOCKERFILE_BYTES).describe('The Dockerfile text.'),
    context: z
      .string()
      .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'context must be base64')
      .optional()
      .describe(`Build context: a base64-encoded tar (optionally gzip-compressed), at most ${MAX_TEMPLATE_CONTEXT_BYTES / 1024 / 1024} MiB once decoded.`),
    files: z
      .record(z.string().min(1).max(4096), z.string())
      .optional()
      .describe('Build context as a map of relative file path → UTF-8 content (instead of `context`).'),
    network: NetworkMode.optional().describe('Network of the build\'s RUN steps: `none` (default) or `bridge`.'),
  })
  .refine((b) => !(b.context !== undefined && b.files !== undefined), { message: 'send either context or files, not both', path: ['files'] });
export type BuildImageRequest = z.infer<typeof BuildImageRequest>;

export const ImageInfo = z.object({
  name: z.string(),
  kind: z.enum(['builtin', 'template']),
  present: z.boolean().describe('Whether the engine has it (a built-in may not be built yet).'),
  id: z.string().nullable(),
  created: z.string().nullable(),
  size_bytes: z.number().nullable(),
  description: z.string().optional(),
  up_to_date: z.boolean().optional().describe('Built-ins: the image matches its current recipe.'),
});
export type ImageInfo = z.infer<typeof ImageInfo>;

export const ImageList = z.object({ images: z.array(ImageInfo) });
export type ImageList = z.infer<typeof ImageList>;

/** Lines of `POST /api/v1/images` with Accept: application/x-ndjson. */
export const ImageBuildEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('log'), line: z.string() }),
  z.object({ type: z.literal('done'), image: ImageInfo }),
  z.object({ type: z.literal('error'), code: z.string(), message: z.string() }),
]);
export type ImageBuildEvent = z.infer<typeof ImageBuildEvent>;

export const CacheInfo = z.object({
  name: z.string(),
  target: z.string().describe('Where it is mounted in sandboxes.'),
  volume: z.string(),
  owner: z.string().describe('Tenant whose cache it is.'),
  read_only: z.boolean().describe('Mounted read-only for this tenant (a cache shared by another tenant).'),
  exists: z.boolean(),
  size_bytes: z.number().nullable(),
});
export type CacheInfo = z.infer<typeof CacheInfo>;

export const CacheList = z.object({ caches: z.array(CacheInfo) });
export type CacheList = z.infer<typeof CacheList>;

export const CachePurgeResult = z.object({
  name: z.string(),
  volume: z.string(),
  method: z.enum(['removed', 'emptied', 'absent']).describe('`emptied` when sandboxes were using it: their mounts stay valid.'),
});
export type CachePurgeResult = z.infer<typeof CachePurgeResult>;
