/**
 * The OpenAPI 3.1 document, generated from the same zod schemas that validate requests. A test compares it with
 * the routes the gateway really serves, so the two cannot drift apart.
 */
import {
  BuildImageRequest,
  CacheList,
  CachePurgeResult,
  Container,
  ContainerExecRequest,
  ContainerList,
  CreateContainerRequest,
  ERROR_CODES,
  ErrorBody,
  ExecuteRequest,
  ExecuteResult,
  HealthStatus,
  ApiKey,
  ApiKeyList,
  CreateTenantRequest,
  CreatedApiKey,
  Tenant,
  TenantList,
  TenantQuotas,
  ImageInfo,
  ImageList,
  PoolInfo,
  PoolList,
  PrewarmRequest,
  StreamCommand,
  StreamEvent,
  Snapshot,
  SnapshotList,
  CheckpointRequest,
  ForkRequest,
  ForkResult,
  CacheClearResult,
  FILE_MODE_HEADER,
  FileReadQuery,
  FileWriteQuery,
  FileWritten,
  LIMITS,
} from '@faas/protocol';
import { z } from 'zod';

interface Operation {
  method: 'get' | 'head' | 'post' | 'put' | 'delete';
  path: string;
  summary: string;
  body?: z.ZodType;
  /** Query parameters (each string field of the object is one). */
  query?: z.ZodObject;
  /** A body of raw bytes instead of JSON. */
  rawBody?: { description: string };
  ok: {
    status: number;
    schema?: z.ZodType;
    description: string;
    /** An answer of raw bytes (`application/octet-stream`), with these headers. */
    raw?: { headers: Record<string, string> };
    /** Another success status with the same content (a PUT that created rather than replaced). */
    also?: { status: number; description: string };
  };
  ndjson?: boolean;
  errors: Array<keyof typeof ERROR_CODES>;
}

const common: Array<keyof typeof ERROR_CODES> = ['unauthorized', 'internal_error', 'engine_unavailable'];
const admin: Array<keyof typeof ERROR_CODES> = ['unauthorized', 'forbidden', 'internal_error'];

export const OPERATIONS: Operation[] = [
  {
    method: 'post',
    path: '/api/v1/execute',
    summary: 'Run a command in a sandbox. With Accept: application/x-ndjson the answer streams events, ending with `exit`.',
    body: ExecuteRequest,
    ok: { status: 200, schema: ExecuteResult, description: 'The command ran (whatever its exit code).' },
    ndjson: true,
    errors: ['validation_error', 'invalid_json', 'mode_not_available', 'image_not_found', 'not_found', 'conflict', ...common],
  },
  {
    method: 'post',
    path: '/api/v1/containers',
    summary: 'Create a persistent sandbox.',
    body: CreateContainerRequest,
    ok: { status: 201, schema: Container, description: 'The sandbox runs.' },
    errors: ['validation_error', 'invalid_json', 'image_not_found', ...common],
  },
  { method: 'get', path: '/api/v1/containers', summary: 'List persistent sandboxes.', ok: { status: 200, schema: ContainerList, description: 'All sandboxes.' }, errors: common },
  { method: 'get', path: '/api/v1/containers/{id}', summary: 'One sandbox.', ok: { status: 200, schema: Container, description: 'The sandbox.' }, errors: ['not_found', ...common] },
  {
    method: 'post',
    path: '/api/v1/containers/{id}/exec',
    summary: 'Run a command in a running sandbox; NDJSON streaming as for execute.',
    body: ContainerExecRequest,
    ok: { status: 200, schema: ExecuteResult, description: 'The command ran.' },
    ndjson: true,
    errors: ['validation_error', 'invalid_json', 'not_found', 'conflict', ...common],
  },
  { method: 'post', path: '/api/v1/containers/{id}/stop', summary: 'Stop every process; the filesystem stays.', ok: { status: 200, schema: Container, description: 'Stopped.' }, errors: ['not_found', ...common] },
  { method: 'post', path: '/api/v1/containers/{id}/resume', summary: 'Start a stopped sandbox again.', ok: { status: 200, schema: Container, description: 'Running.' }, errors: ['not_found', 'conflict', ...common] },
  { method: 'delete', path: '/api/v1/containers/{id}', summary: 'Remove the sandbox and its container.', ok: { status: 204, description: 'Gone.' }, errors: ['not_found', ...common] },
  {
    method: 'get',
    path: '/api/v1/containers/{id}/stream',
    summary: 'WebSocket: StreamEvent messages from the sandbox, StreamCommand messages to it (see components).',
    ok: { status: 101, description: 'Switching to the WebSocket protocol.' },
    errors: ['not_found', ...common],
  },
  {
    method: 'post',
    path: '/api/v1/prewarm',
    summary: 'Keep `count` sandboxes of an image and shape started, for ephemeral executions that match it.',
    body: PrewarmRequest,
    ok: { status: 200, schema: PoolInfo, description: 'The pool, filling in the background.' },
    errors: ['validation_error', 'invalid_json', 'image_not_found', ...common],
  },
  { method: 'get', path: '/api/v1/pools', summary: 'Warm pools: size, ready, in use, hits, misses, error.', ok: { status: 200, schema: PoolList, description: 'All pools.' }, errors: common },
  {
    method: 'post',
    path: '/api/v1/tenants',
    summary: 'Admin: create a tenant, optionally with quotas.',
    body: CreateTenantRequest,
    ok: { status: 201, schema: Tenant, description: 'The tenant.' },
    errors: ['validation_error', 'invalid_json', 'conflict', ...admin],
  },
  { method: 'get', path: '/api/v1/tenants', summary: 'Admin: list tenants.', ok: { status: 200, schema: TenantList, description: 'All tenants.' }, errors: admin },
  { method: 'get', path: '/api/v1/tenants/{id}', summary: 'Admin: one tenant.', ok: { status: 200, schema: Tenant, description: 'The tenant.' }, errors: ['not_found', ...admin] },
  {
    method: 'put',
    path: '/api/v1/tenants/{id}/quotas',
    summary: 'Admin: replace a tenant\'s quotas.',
    body: TenantQuotas,
    ok: { status: 200, schema: Tenant, description: 'The tenant.' },
    errors: ['validation_error', 'not_found', ...admin],
  },
  {
    method: 'post',
    path: '/api/v1/tenants/{id}/keys',
    summary: 'Admin: a new API key for the tenant; the secret is in this answer only.',
    ok: { status: 201, schema: CreatedApiKey, description: 'The key, with its secret.' },
    errors: ['not_found', ...admin],
  },
  { method: 'get', path: '/api/v1/tenants/{id}/keys', summary: 'Admin: the tenant\'s keys (no secrets).', ok: { status: 200, schema: ApiKeyList, description: 'Keys.' }, errors: ['not_found', ...admin] },
  { method: 'delete', path: '/api/v1/tenants/{id}/keys/{keyId}', summary: 'Admin: revoke a key.', ok: { status: 200, schema: ApiKey, description: 'The revoked key.' }, errors: ['not_found', ...admin] },
  { method: 'get', path: '/health', summary: 'Probes the engine; 503 when it is unreachable.', ok: { status: 200, schema: HealthStatus, description: 'Healthy.' }, errors: ['engine_unavailable'] },
  { method: 'get', path: '/metrics', summary: 'Prometheus metrics (text format); admin key when keys are on.', ok: { status: 200, description: 'Metrics.' }, errors: ['unauthorized', 'forbidden'] },
  { method: 'get', path: '/api/v1/images', summary: 'Images sandboxes can run: the built-ins (built or not) and templates.', ok: { status: 200, schema: ImageList, description: 'All images.' }, errors: common },
  {
    method: 'post',
    path: '/api/v1/images',
    summary:
      'Build a template from a Dockerfile (context: base64 tar or `files` map, at most 64 MiB), FROM local images only. With Accept: application/x-ndjson the build log streams as `{type:"log"}` lines ending with `{type:"done"}` or `{type:"error"}`.',
    body: BuildImageRequest,
    ok: { status: 201, schema: ImageInfo, description: 'Built (200 with the NDJSON stream).' },
    errors: ['validation_error', 'invalid_json', 'image_not_found', 'conflict', 'payload_too_large', ...common],
  },
  { method: 'delete', path: '/api/v1/images/{name}', summary: 'Remove a template (URL-encode the name); built-ins and other images are refused.', ok: { status: 204, description: 'Gone.' }, errors: ['not_found', 'forbidden', 'conflict', 'validation_error', ...common] },
  { method: 'get', path: '/api/v1/caches', summary: "The caller's shared dependency caches and their sizes.", ok: { status: 200, schema: CacheList, description: 'The caches.' }, errors: common },
  { method: 'delete', path: '/api/v1/caches/{name}', summary: 'Purge a dependency cache; sandboxes using it keep a valid (emptied) mount.', ok: { status: 200, schema: CachePurgeResult, description: 'Purged.' }, errors: ['not_found', 'forbidden', ...common] },
  { method: 'get', path: '/api/v1/snapshots', summary: "The caller's snapshots.", ok: { status: 200, schema: SnapshotList, description: 'All snapshots.' }, errors: common },
  { method: 'get', path: '/api/v1/snapshots/{id}', summary: 'One snapshot (also one taken by another gateway sharing the S3 tier).', ok: { status: 200, schema: Snapshot, description: 'The snapshot.' }, errors: ['not_found', ...common] },
  {
    method: 'delete',
    path: '/api/v1/snapshots/{id}',
    summary: 'Delete a snapshot; refused while snapshots name it as parent unless `?force=true`.',
    ok: { status: 204, description: 'Gone.' },
    errors: ['not_found', 'conflict', 'validation_error', ...common],
  },
  {
    method: 'post',
    path: '/api/v1/containers/{id}/checkpoint',
    summary: 'Snapshot a running sandbox (frozen while its files are read).',
    body: CheckpointRequest,
    ok: { status: 201, schema: Snapshot, description: 'The snapshot.' },
    errors: ['validation_error', 'not_found', 'conflict', ...common],
  },
  {
    method: 'post',
    path: '/api/v1/fork',
    summary: 'Run variants in parallel, each on its own copy of the parent (execution, snapshot or sandbox).',
    body: ForkRequest,
    ok: { status: 200, schema: ForkResult, description: "Every variant's result or error." },
    errors: ['validation_error', 'invalid_json', 'not_found', 'gone', 'conflict', 'image_not_found', ...common],
  },
  {
    method: 'post',
    path: '/api/v1/executions/{id}/fork',
    summary: 'Alias of POST /api/v1/fork with the execution as parent.',
    body: ForkRequest,
    ok: { status: 200, schema: ForkResult, description: "Every variant's result or error." },
    errors: ['validation_error', 'invalid_json', 'not_found', 'gone', 'conflict', ...common],
  },
  { method: 'delete', path: '/api/v1/cache/{key}', summary: 'Drop one cached result.', ok: { status: 204, description: 'Gone.' }, errors: ['not_found', 'validation_error', ...common] },
  { method: 'delete', path: '/api/v1/cache', summary: 'Drop all cached results of the caller, or those of one image (`?image=`, tag or id).', ok: { status: 200, schema: CacheClearResult, description: 'How many were dropped.' }, errors: ['validation_error', ...common] },
  { method: 'get', path: '/api/v1/openapi.json', summary: 'This document.', ok: { status: 200, description: 'OpenAPI 3.1.' }, errors: [] },
  {
    method: 'get',
    path: '/api/v1/containers/{id}/files',
    summary:
      "Read a regular file of a sandbox, running or stopped: its raw bytes, streamed. `path` is absolute or relative to the sandbox's working directory; a directory, symlink or other special file is a 409 saying what it is.",
    query: FileReadQuery,
    ok: { status: 200, description: 'The file.', raw: { headers: fileHeaders() } },
    errors: ['validation_error', 'not_found', 'conflict', ...common],
  },
  {
    method: 'head',
    path: '/api/v1/containers/{id}/files',
    summary: 'Like GET, without the content: the size (`content-length`) and permission bits of a file.',
    query: FileReadQuery,
    ok: { status: 200, description: 'The file is there.', raw: { headers: fileHeaders() } },
    errors: ['validation_error', 'not_found', 'conflict', ...common],
  },
  {
    method: 'put',
    path: '/api/v1/containers/{id}/files',
    summary: `Write (create or replace) a regular file in a running sandbox from the raw body (any Content-Type; at most ${LIMITS.maxFileWriteBytes / 1024 / 1024} MiB), making parent folders; owned by root, \`mode\` default 0644. A directory or symlink at the path is a 409.`,
    query: FileWriteQuery,
    rawBody: { description: "The file's bytes." },
    ok: { status: 200, schema: FileWritten, description: 'Replaced an existing file.', also: { status: 201, description: 'Created the file.' } },
    errors: ['validation_error', 'not_found', 'conflict', 'payload_too_large', ...common],
  },
];

function fileHeaders(): Record<string, string> {
  return { 'content-length': 'The size of the file in bytes.', [FILE_MODE_HEADER]: 'Its permission bits as four octal digits, e.g. `0644`.' };
}

const jsonSchema = (schema: z.ZodType, io: 'input' | 'output') => z.toJSONSchema(schema, { io, unrepresentable: 'any' });

let cached: object | undefined;

export function openApiDocument(): object {
  if (cached) return cached;
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) {
    const raw = op.ok.raw;
    const responses: Record<string, unknown> = {
      [op.ok.status]: {
        description: op.ok.description,
        ...(raw
          ? {
              headers: Object.fromEntries(Object.entries(raw.headers).map(([name, description]) => [name, { description, schema: { type: 'string' } }])),
              ...(op.method === 'head' ? {} : { content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } }),
            }
          : {}),
        ...(op.ok.schema
          ? {
              content: {
                'application/json': { schema: jsonSchema(op.ok.schema, 'output') },
                ...(op.ndjson ? { 'application/x-ndjson': { schema: { $ref: '#/components/schemas/StreamEvent' } } } : {}),
              },
            }
          : {}),
      },
    };
    if (op.ok.also) responses[op.ok.also.status] = { ...(responses[op.ok.status] as object), description: op.ok.also.description };
    for (const code of op.errors) {
      const status = String(ERROR_CODES[code].status);
      const existing = responses[status] as { description: string } | undefined;
      const description = `${existing ? `${existing.description} ` : ''}\`${code}\`: ${ERROR_CODES[code].when}`;
      responses[status] = { description, content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorBody' } } } };
    }
    const params: object[] = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    if (op.query) {
      const query = jsonSchema(op.query, 'input') as { properties?: Record<string, { description?: string }>; required?: string[] };
      for (const [name, schema] of Object.entries(query.properties ?? {})) {
        params.push({ name, in: 'query', required: query.required?.includes(name) ?? false, ...(schema.description ? { description: schema.description } : {}), schema });
      }
    }
    (paths[op.path] ??= {})[op.method] = {
      summary: op.summary,
      ...(params.length ? { parameters: params } : {}),
      ...(op.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(op.body, 'input') } } } } : {}),
      ...(op.rawBody ? { requestBody: { required: false, description: op.rawBody.description, content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } } } : {}),
      responses,
    };
  }
  cached = {
    openapi: '3.1.0',
    info: { title: 'faas gateway', version: '0.1.0', description: 'Run untrusted code in isolated sandboxes; stream what happens inside.' },
    paths,
    components: {
      schemas: {
        ErrorBody: jsonSchema(ErrorBody, 'output'),
        StreamEvent: jsonSchema(StreamEvent, 'output'),
        StreamCommand: jsonSchema(StreamCommand, 'input'),
      },
    },
  };
  return cached;
}
