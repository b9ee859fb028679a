/**
 * The WebSocket protocol of /api/v1/containers/:id/stream (and the NDJSON stream of /api/v1/execute): the
 * specification's events and commands, plus what shells need (pty, resize, signal, exec ids, errors).
 */
import { z } from 'zod';
import { LIMITS } from './limits.js';
import { EnvField, commandField, workingDirField } from './rest.js';

const execId = z.string().min(1).max(128);
/** Position of the event in its sandbox's stream; reconnect with `?since=<seq>` to replay what came after it. */
const seq = z.number().int().nonnegative().optional();

export const FILE_EVENT_KINDS = ['created', 'modified', 'deleted', 'renamed'] as const;
export const PROCESS_EVENT_KINDS = ['started', 'exited'] as const;

export const StdoutEvent = z.object({ type: z.literal('stdout'), data: z.string(), exec_id: execId.optional(), seq });
export const StderrEvent = z.object({ type: z.literal('stderr'), data: z.string(), exec_id: execId.optional(), seq });
export const ExitEvent = z.object({
  type: z.literal('exit'),
  code: z.number().int().describe('Exit status; 128+N when killed by signal N.'),
  exec_id: execId.optional(),
  signal: z.string().nullable().optional(),
  timed_out: z.boolean().optional(),
  oom_killed: z.boolean().optional(),
  container_id: z.string().optional().describe('The sandbox kept by a streamed persistent execute.'),
  seq,
});
export const FileEvent = z.object({
  type: z.literal('file_event'),
  path: z.string().describe('Relative to the watched directory (/workspace by default).'),
  event: z.enum(FILE_EVENT_KINDS),
  /** For `renamed`: the path it had before, when the rename stayed inside the watched tree. */
  from: z.string().optional(),
  seq,
});
export const ProcessEvent = z.object({
  type: z.literal('process_event'),
  pid: z.number().int(),
  command: z.string(),
  event: z.enum(PROCESS_EVENT_KINDS),
  exec_id: execId.optional(),
  seq,
});
export const CustomEvent = z.object({ type: z.literal('custom'), name: z.string(), data: z.unknown(), seq });
export const HeartbeatEvent = z.object({ type: z.literal('heartbeat'), ts: z.string().optional() });
export const ErrorEvent = z.object({
  type: z.literal('error'),
  message: z.string(),
  code: z.string().optional(),
  exec_id: execId.optional(),
  seq,
});

export const StreamEvent = z.discriminatedUnion('type', [
  StdoutEvent,
  StderrEvent,
  ExitEvent,
  FileEvent,
  ProcessEvent,
  CustomEvent,
  HeartbeatEvent,
  ErrorEvent,
]);
export type StreamEvent = z.infer<typeof StreamEvent>;
export type StreamEventOf<T extends StreamEvent['type']> = Extract<StreamEvent, { type: T }>;

const cols = z.number().int().min(1).max(LIMITS.maxPtyCols);
const rows = z.number().int().min(1).max(LIMITS.maxPtyRows);

export const StdinCommand = z.strictObject({
  type: z.literal('stdin'),
  data: z.string().max(LIMITS.maxStdinBytes),
  exec_id: execId.optional().describe('Which exec; default the most recent one still running.'),
  eof: z.boolean().optional().describe('Close the process input after this data.'),
});
export const ExecCommand = z.strictObject({
  type: z.literal('exec'),
  command: commandField,
  exec_id: execId.optional().describe('Id for the events of this exec; the server picks one when absent.'),
  pty: z.boolean().optional(),
  cols: cols.optional(),
  rows: rows.optional(),
  env: EnvField.optional(),
  working_dir: workingDirField.optional(),
  timeout_ms: z.number().int().min(1).max(LIMITS.maxTimeoutMs).optional().describe('Default: no timeout.'),
});
export const GetStateCommand = z.strictObject({ type: z.literal('get_state') });
export const CheckpointCommand = z.strictObject({ type: z.literal('checkpoint'), name: z.string().max(256).optional() });
export const StopCommand = z.strictObject({ type: z.literal('stop') });
export const ResizeCommand = z.strictObject({ type: z.literal('resize'), cols, rows, exec_id: execId.optional() });
export const SignalCommand = z.strictObject({
  type: z.literal('signal'),
  signal: z.string().regex(/^(SIG)?[A-Z0-9]+$/, 'signal must be a name such as SIGINT or INT'),
  exec_id: execId.optional(),
});

export const StreamCommand = z.discriminatedUnion('type', [
  StdinCommand,
  ExecCommand,
  GetStateCommand,
  CheckpointCommand,
  StopCommand,
  ResizeCommand,
  SignalCommand,
]);
export type StreamCommand = z.infer<typeof StreamCommand>;
export type StreamCommandOf<T extends StreamCommand['type']> = Extract<StreamCommand, { type: T }>;

/** The `data` of the `custom` event named `state` that answers `get_state`. */
export const SandboxState = z.object({
  id: z.string(),
  status: z.string(),
  processes: z.array(z.object({ pid: z.number(), command: z.string(), exec_id: z.string().optional() })),
});
export type SandboxState = z.infer<typeof SandboxState>;
