/**
 * REST bodies of /api/v1. One schema validates a request in the gateway, documents it in OpenAPI and types it in
 * the SDK. Field names are snake_case on the wire.
 */
import { z } from 'zod';
import { RUNNABLE_IMAGE, RUNNABLE_IMAGE_MESSAGE } from './image-reference.js';
import { DEFAULT_IMAGE, LIMITS } from './limits.js';

export const EXECUTION_MODES = ['ephemeral', 'cached', 'checkpointed', 'branched', 'persistent'] as const;
export const ExecutionMode = z.enum(EXECUTION_MODES).describe('How the sandbox lives and what is kept after the run.');
export type ExecutionMode = z.infer<typeof ExecutionMode>;

export const NetworkMode = z.enum(['none', 'bridge']).describe('`none` (default): no network at all. `bridge`: outbound access.');
export type NetworkMode = z.infer<typeof NetworkMode>;

/** Programs get C strings: a NUL would silently cut the value there. */
function noNul(field: z.ZodString, what: string): z.ZodString {
  return field.regex(/^[^\0]*$/, `${what} must not contain NUL characters`);
}

export const ImageField = z
  .string()
  .min(1)
  .max(512)
  .regex(RUNNABLE_IMAGE, RUNNABLE_IMAGE_MESSAGE)
  .describe(`Image to run (default \`${DEFAULT_IMAGE}\`); any image present in the engine.`);
export const EnvField = z
  .record(z.string().regex(/^[^=\0]+$/, 'env names must be non-empty and contain no "=" or NUL'), noNul(z.string().max(128 * 1024), 'env values'), {
    // Without this a bad name is reported as zod's "Invalid key in record".
    error: (issue) => (issue.code === 'invalid_key' ? issue.issues?.[0]?.message : undefined),
  })
  .refine((env) => Object.keys(env).length <= LIMITS.maxEnvEntries, `at most ${LIMITS.maxEnvEntries} env entries`)
  .describe('Environment variables added to the process.');
export const workingDirField = noNul(z.string().startsWith('/', 'working_dir must be an absolute path').max(4096), 'working_dir');
export const commandField = noNul(z.string().min(1, 'command must not be empty').max(LIMITS.maxCommandBytes), 'command').describe('Run with /bin/sh -c.');
const argvField = z
  .array(noNul(z.string().max(LIMITS.maxCommandBytes), 'argv entries'))
  .min(1, 'argv must name a program')
  .max(LIMITS.maxArgvEntries)
  .refine((argv) => argv[0] !== '', 'argv[0] must not be empty')
  .describe('Program and arguments, run without a shell.');

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const fileMode = z.number().int().min(0).max(0o7777).describe('Permission bits (default 0644), e.g. 493 for 0755.');
/** One input file: its text, or `{ content | base64, mode? }`. */
export const InputFile = z.union(
  [
    z.string(),
    z.strictObject({ content: z.string(), mode: fileMode.optional() }),
    z.strictObject({ base64: z.string().regex(BASE64, 'base64 must be standard base64 (A-Z a-z 0-9 + /, = padding)'), mode: fileMode.optional() }),
  ],
  { error: 'a file is its text, or an object { content } or { base64 }, with an optional mode' },
);
export type InputFile = z.infer<typeof InputFile>;

/** Bytes of an input file once decoded. */
export function inputFileBytes(file: InputFile): Buffer {
  if (typeof file === 'string') return Buffer.from(file, 'utf8');
  return 'base64' in file ? Buffer.from(file.base64, 'base64') : Buffer.from(file.content, 'utf8');
}

/** How many bytes `inputFileBytes` would give, without decoding. */
function inputFileSize(file: InputFile): number {
  if (typeof file === 'string') return Buffer.byteLength(file, 'utf8');
  return 'base64' in file ? Buffer.byteLength(file.base64, 'base64') : Buffer.byteLength(file.content, 'utf8');
}

export const FilesField = z
  .record(noNul(z.string().min(1, 'file paths must not be empty').max(4096), 'file paths').refine((p) => !p.endsWith('/'), 'a file path must not end with "/"'), InputFile, {
    error: (issue) => (issue.code === 'invalid_key' ? issue.issues?.[0]?.message : undefined),
  })
  .refine((files) => Object.keys(files).length <= LIMITS.maxInputFiles, `at most ${LIMITS.maxInputFiles} files`)
  .refine(
    (files) => Object.values(files).reduce((n, f) => n + inputFileSize(f), 0) <= LIMITS.maxInputFileBytes,
    `the files may hold at most ${LIMITS.maxInputFileBytes / 1024 / 1024} MiB in all; put bigger inputs in an image or a snapshot`,
  )
  .describe('Files written before the command runs: path (absolute, or relative to working_dir) → text, or { content | base64, mode }.');

/** What to run: exactly one of `command` and `argv`, plus its environment, input files and limits in time. */
export const ProcessFields = {
  command: commandField.optional(),
  argv: argvField.optional(),
  env: EnvField.optional(),
  working_dir: workingDirField.optional().describe('Directory to run in (default /workspace).'),
  stdin: z.string().max(LIMITS.maxStdinBytes).optional().describe('Sent to the process, then end of input.'),
  files: FilesField.optional(),
  timeout_ms: z
    .number()
    .int()
    .min(1)
    .max(LIMITS.maxTimeoutMs)
    .optional()
    .describe(`Kill the whole process tree after this long (default ${LIMITS.defaultTimeoutMs}).`),
};

/** Limits enforced by the kernel on the whole sandbox. */
export const ResourceFields = {
  memory_mb: z.number().int().min(LIMITS.minMemoryMb).max(LIMITS.maxMemoryMb).optional().describe('Memory limit; exceeding it OOM-kills.'),
  cpu_cores: z.number().min(LIMITS.minCpuCores, `cpu_cores must be at least ${LIMITS.minCpuCores}`).max(LIMITS.maxCpuCores).optional().describe('CPU cap in cores (fractions allowed).'),
  pids_limit: z.number().int().min(1).max(LIMITS.maxPidsLimit).optional().describe('Most processes and threads at once.'),
  network: NetworkMode.optional(),
  read_only: z
    .boolean()
    .optional()
    .describe('Read-only root filesystem; /tmp and the working directory become small writable tmpfs mounts (default false).'),
};

function exactlyOneCommand(body: { command?: string | undefined; argv?: string[] | undefined }): boolean {
  return (body.command === undefined) !== (body.argv === undefined);
}
const oneCommandIssue = { message: 'give exactly one of `command` (a shell string) or `argv` (an array)', path: ['command'] };

export const ExecuteRequest = z
  .strictObject({
    ...ProcessFields,
    ...ResourceFields,
    image: ImageField.optional(),
    mode: ExecutionMode.optional().describe('Default `ephemeral`.'),
    cache_ttl_s: z.number().int().min(1).max(30 * 24 * 3600).optional().describe('Cached mode: how long the result stays (default FAAS_CACHE_TTL_S, 3600).'),
    cache_failures: z.boolean().optional().describe('Cached mode: also cache non-zero exits, timeouts and OOM kills (default false).'),
    checkpoint: z.string().min(1).max(128).optional().describe('Snapshot id to start from (cached and checkpointed modes).'),
  })
  .refine(exactlyOneCommand, oneCommandIssue);
export type ExecuteRequest = z.infer<typeof ExecuteRequest>;

export const ExecuteResult = z.object({
  id: z.string().describe('Execution id.'),
  mode: ExecutionMode,
  exit_code: z.number().int().describe('The exit status; 128+N when killed by signal N (as a shell reports it).'),
  signal: z.string().nullable().describe('Name of the signal that killed the process, e.g. SIGKILL, or null.'),
  stdout: z.string(),
  stderr: z.string(),
  stdout_truncated: z.boolean(),
  stderr_truncated: z.boolean(),
  duration_ms: z.number(),
  timed_out: z.boolean(),
  oom_killed: z.boolean(),
  container_id: z.string().optional().describe('The sandbox it ran in, for persistent mode.'),
  cached: z.boolean().optional().describe('Cached mode: true when the answer came from the cache (nothing ran).'),
  cache_key: z.string().optional().describe('Cached mode: the key of the result (for DELETE /api/v1/cache/{key}).'),
  snapshot_id: z.string().optional().describe('Checkpointed mode: the snapshot taken when the command finished.'),
});
export type ExecuteResult = z.infer<typeof ExecuteResult>;

export const CONTAINER_STATUSES = ['creating', 'running', 'stopped', 'lost'] as const;
export const ContainerStatus = z.enum(CONTAINER_STATUSES);
export type ContainerStatus = z.infer<typeof ContainerStatus>;

export const CreateContainerRequest = z
  .strictObject({
    ...ResourceFields,
    image: ImageField.optional(),
    command: commandField.optional().describe('A command kept running in the sandbox; by default none is needed.'),
    argv: argvField.optional(),
    env: EnvField.optional(),
    working_dir: workingDirField.optional(),
    idle_timeout_s: z
      .number()
      .int()
      .min(0)
      .max(LIMITS.maxIdleTimeoutS)
      .optional()
      .describe('Stop the sandbox after this long without activity; 0 never stops it (default 0).'),
    checkpoint: z.string().min(1).max(128).optional().describe('Snapshot id whose files the sandbox starts with.'),
  })
  .refine((b) => !(b.command !== undefined && b.argv !== undefined), { message: 'give `command` or `argv`, not both', path: ['command'] });
export type CreateContainerRequest = z.infer<typeof CreateContainerRequest>;

export const Limits = z.object({
  memory_mb: z.number().nullable(),
  cpu_cores: z.number().nullable(),
  pids_limit: z.number().nullable(),
  network: NetworkMode,
  read_only: z.boolean().optional(),
});
export type Limits = z.infer<typeof Limits>;

export const Container = z.object({
  id: z.string(),
  status: ContainerStatus,
  image: z.string(),
  command: z.array(z.string()).nullable(),
  env: z.record(z.string(), z.string()),
  working_dir: z.string(),
  limits: Limits,
  idle_timeout_s: z.number(),
  created_at: z.string().describe('ISO 8601.'),
  last_active_at: z.string().describe('ISO 8601.'),
  stopped_reason: z.string().nullable().describe('Why it stopped: `request`, `idle`, `engine` (it died), or null.'),
  lifecycle: z
    .array(z.object({ at: z.string(), event: z.string(), detail: z.record(z.string(), z.unknown()) }))
    .optional()
    .describe('Recent lifecycle events (created, stopped with reason, resumed, exec_timed_out, exec_oom_killed, command_exited, lost), on GET of one sandbox.'),
});
export type Container = z.infer<typeof Container>;

export const ContainerList = z.object({ containers: z.array(Container) });
export type ContainerList = z.infer<typeof ContainerList>;

export const ContainerExecRequest = z.strictObject({ ...ProcessFields }).refine(exactlyOneCommand, oneCommandIssue);
export type ContainerExecRequest = z.infer<typeof ContainerExecRequest>;

export const ErrorBody = z.object({
  error: z.string().describe('A stable machine-readable code, e.g. `validation_error`.'),
  message: z.string().describe('What went wrong, naming the field or id, and what to do.'),
  field: z.string().optional().describe('The request field at fault, for validation errors.'),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

export const HealthStatus = z.object({
  status: z.enum(['ok', 'unavailable']),
  runtime: z.string(),
  engine: z.object({ reachable: z.boolean(), version: z.string().nullable(), error: z.string().nullable() }),
});
export type HealthStatus = z.infer<typeof HealthStatus>;
