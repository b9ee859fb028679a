/**
 * What the client subcommands (run, sandbox, shell, attach) share: the gateway options, argument parsing with
 * one-line usage errors, and turning SDK errors into one line and an exit code.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConnectionError, FaasClient, FaasError, LIMITS, type ExecutionResult, type FileContent, type NetworkMode, type ProcessOptions, type ResourceOptions } from '@faas/sdk';
import { CliError } from './command.js';

/** Options every client subcommand accepts. */
export const CLIENT_OPTIONS = {
  url: { type: 'string' },
  'api-key': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export const CLIENT_OPTIONS_HELP = [
  '  --url URL          gateway URL (default $FAAS_URL, then http://127.0.0.1:8080)',
  '  --api-key KEY      API key (default $FAAS_API_KEY)',
  '  --json             print JSON instead of human-readable output',
  '  -h, --help         show this help',
].join('\n');

/** Options of the process run by `run` and `sandbox exec`. */
export const PROCESS_OPTIONS = {
  env: { type: 'string', short: 'e', multiple: true },
  workdir: { type: 'string', short: 'w' },
  timeout: { type: 'string' },
  file: { type: 'string', short: 'f', multiple: true },
  stdin: { type: 'boolean', short: 'i' },
} as const satisfies ParseArgsConfig['options'];

export const PROCESS_OPTIONS_HELP = [
  '  -e, --env K=V      environment variable (repeatable)',
  '  -w, --workdir DIR  absolute directory to run in (default /workspace)',
  '  --timeout MS       kill the command after MS milliseconds (default 30000)',
  '  -f, --file LOCAL[=DEST]',
  '                     copy a local file in before the command runs, to DEST (default: its name, in the',
  `                     working directory), keeping its permission bits (repeatable; ${LIMITS.maxInputFileBytes / 1024 / 1024} MiB in all)`,
  '  -i, --stdin        send this command\'s standard input to the process',
].join('\n');

/** The process options (`PROCESS_OPTIONS`, or those of them a command has) as SDK options. */
export async function processOptionsFrom(values: {
  env?: string[] | undefined;
  workdir?: string | undefined;
  timeout?: string | undefined;
  file?: string[] | undefined;
  stdin?: boolean | undefined;
}): Promise<Pick<ProcessOptions, 'env' | 'workingDir' | 'timeoutMs' | 'files' | 'stdin'>> {
  const opts: Pick<ProcessOptions, 'env' | 'workingDir' | 'timeoutMs' | 'files' | 'stdin'> = {};
  const env = envOption(values.env);
  if (env) opts.env = env;
  if (values.workdir !== undefined) opts.workingDir = values.workdir;
  const timeoutMs = numberOption('timeout', values.timeout);
  if (timeoutMs !== undefined) opts.timeoutMs = timeoutMs;
  const files = fileOption(values.file);
  if (files) opts.files = files;
  if (values.stdin) opts.stdin = await readStdin();
  return opts;
}

/** `--file LOCAL[=DEST]` values: each local file's bytes and permission bits, under DEST or its own name. */
export function fileOption(values: string[] | undefined): Record<string, FileContent> | undefined {
  if (values === undefined || values.length === 0) return undefined;
  const files: Record<string, FileContent> = {};
  for (const entry of values) {
    const eq = entry.indexOf('=');
    const local = eq < 0 ? entry : entry.slice(0, eq);
    const dest = eq < 0 ? path.basename(entry) : entry.slice(eq + 1);
    if (local === '' || dest === '') throw new CliError(`--file needs LOCAL or LOCAL=DEST, got "${entry}"`);
    const { data, mode } = readLocalFile(local, { label: `--file ${local}`, folders: 'copy folders in with an image or a snapshot' });
    files[dest] = { content: data, mode };
  }
  return files;
}

/**
 * A local regular file's bytes and permission bits. Errors are CliErrors starting with `label`, exit `exitCode`;
 * `folders` says what to do instead for a folder; a file over `maxBytes` is refused before it is read.
 */
export function readLocalFile(
  local: string,
  opts: { label: string; folders: string; exitCode?: number; maxBytes?: number },
): { data: Buffer; mode: number } {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(local);
  } catch (err) {
    throw new CliError(`${opts.label}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`, opts.exitCode);
  }
  if (!stat.isFile()) throw new CliError(`${opts.label}: not a regular file (${opts.folders})`, opts.exitCode);
  if (opts.maxBytes !== undefined && stat.size > opts.maxBytes) {
    throw new CliError(`${local} is ${(stat.size / 1024 / 1024).toFixed(1)} MiB, more than the ${opts.maxBytes / 1024 / 1024} MiB a file write may carry`, opts.exitCode);
  }
  return { data: fs.readFileSync(local), mode: stat.mode & 0o7777 };
}

/** Options of the sandbox's limits (`run`, `sandbox create`). */
export const RESOURCE_OPTIONS = {
  image: { type: 'string' },
  memory: { type: 'string' },
  cpus: { type: 'string' },
  'pids-limit': { type: 'string' },
  network: { type: 'string' },
  'read-only': { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

export const RESOURCE_OPTIONS_HELP = [
  '  --image IMAGE      image to run (default faas/busybox:latest)',
  '  --memory MB        memory limit in MiB',
  '  --cpus N           CPU cap in cores (fractions allowed)',
  '  --pids-limit N     most processes at once',
  '  --network MODE     none (default) or bridge',
  '  --read-only        read-only root filesystem (/tmp and the working directory stay writable)',
].join('\n');

type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ options: O; allowPositionals: true; strict: true }>>;

/**
 * Parses options with usage errors as `CliError`. Everything after a `--` is returned as `rest` untouched (the
 * command to run); `positionals` are the non-option arguments before it.
 */
export function parseCommandLine<O extends Options>(
  args: string[],
  options: O,
  usageHint: string,
): { values: Parsed<O>['values']; positionals: string[]; rest: string[] | undefined } {
  const dash = args.indexOf('--');
  const before = dash === -1 ? args : args.slice(0, dash);
  const rest = dash === -1 ? undefined : args.slice(dash + 1);
  try {
    const parsed = parseArgs({ args: before, options, allowPositionals: true, strict: true });
    return { values: parsed.values, positionals: parsed.positionals, rest };
  } catch (err) {
    const lines = err instanceof Error ? err.message.split('\n') : [String(err)];
    // "--idle-timeout -5": node takes -5 for an option; its own hint is on a later line.
    const ambiguous = /^Option '(--[\w-]+)'.* argument is ambiguous/.exec(lines[0] ?? '');
    if (ambiguous) throw new CliError(`${ambiguous[1]} needs a value; for one starting with "-" write ${ambiguous[1]}=VALUE; ${usageHint}`);
    throw new CliError(`${(lines[0] ?? '').replace(/\. To specify a positional argument.*$/, '')}; ${usageHint}`);
  }
}

/** A number option: integer unless `fraction`; names the option when it is not one. */
export function numberOption(name: string, value: string | undefined, fraction = false): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || (!fraction && !Number.isInteger(n))) {
    throw new CliError(`--${name} must be ${fraction ? 'a number' : 'an integer'}, got "${value}"`);
  }
  return n;
}

/** `--env K=V` values as a record. */
/** The sandbox limits given with the RESOURCE_OPTIONS flags, as SDK options (absent flags stay absent). */
export function resourceOptionsFrom(values: {
  memory?: string | undefined;
  cpus?: string | undefined;
  'pids-limit'?: string | undefined;
  network?: string | undefined;
  'read-only'?: boolean | undefined;
}): ResourceOptions {
  const opts: ResourceOptions = {};
  const memoryMb = numberOption('memory', values.memory);
  if (memoryMb !== undefined) opts.memoryMb = memoryMb;
  const cpuCores = numberOption('cpus', values.cpus, true);
  if (cpuCores !== undefined) opts.cpuCores = cpuCores;
  const pidsLimit = numberOption('pids-limit', values['pids-limit']);
  if (pidsLimit !== undefined) opts.pidsLimit = pidsLimit;
  if (values.network !== undefined) opts.network = values.network as NetworkMode;
  if (values['read-only']) opts.readOnly = true;
  return opts;
}

export function envOption(values: string[] | undefined): Record<string, string> | undefined {
  if (values === undefined || values.length === 0) return undefined;
  const env: Record<string, string> = {};
  for (const entry of values) {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new CliError(`--env needs NAME=VALUE, got "${entry}"`);
    env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

export function clientFrom(values: { url?: string | undefined; 'api-key'?: string | undefined }): FaasClient {
  try {
    const options: { baseUrl?: string; apiKey?: string } = {};
    if (values.url !== undefined) options.baseUrl = values.url;
    if (values['api-key'] !== undefined) options.apiKey = values['api-key'];
    return new FaasClient(options);
  } catch (err) {
    throw toCliError(err);
  }
}

/** SDK option → the CLI flag that sets it, so client-side validation errors name what the user typed. */
const FLAG_OF_OPTION: Record<string, string> = {
  memoryMb: '--memory',
  cpuCores: '--cpus',
  pidsLimit: '--pids-limit',
  network: '--network',
  image: '--image',
  mode: '--mode',
  env: '--env',
  workingDir: '--workdir',
  timeoutMs: '--timeout',
  idleTimeoutS: '--idle-timeout',
  baseUrl: '--url',
  readOnly: '--read-only',
  count: '--count',
  maxSandboxes: '--max-sandboxes',
  maxMemoryMb: '--max-memory-mb',
  maxCpuCores: '--max-cpus',
  maxPids: '--max-pids',
  executionsPerMinute: '--executions-per-minute',
  snapshotBytes: '--snapshot-bytes',
};

/**
 * SDK errors as one line: a `ConnectionError` reads `cannot reach the gateway at URL: <reason>` (exit 1), other
 * gateway errors their message (exit 1), client-side validation errors are usage errors (exit 2).
 */
export function toCliError(err: unknown): unknown {
  if (err instanceof CliError) return err;
  if (err instanceof ConnectionError) {
    if (err.message.startsWith('cannot reach')) return new CliError(`cannot reach the gateway at ${err.url ?? '?'}: ${err.reason}`, 1);
    return new CliError(err.message, 1);
  }
  if (err instanceof FaasError) {
    // The SDK's own checks name the option (`field`); an error event of a stream also has status 0, but the
    // gateway sent it: a failed command or build, not a mistyped option.
    const usage = err.status === 0 && err.code === 'validation_error' && err.field !== undefined;
    const flag = usage && err.field !== undefined ? FLAG_OF_OPTION[err.field.split('.')[0] ?? ''] : undefined;
    if (flag !== undefined) return new CliError(`invalid ${flag}: ${err.message.replace(/^invalid [^:]*: /, '')}`, 2);
    return new CliError(usage ? err.message : `${err.message} (${err.code})`, usage ? 2 : 1);
  }
  return err;
}

/** Runs the body of a subcommand, turning SDK errors into `CliError`s. */
export async function withErrors<T>(body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    throw toCliError(err);
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Exit code of a finished command: its own, capped to what a process can exit with. */
export function exitCodeOf(result: ExecutionResult): number {
  return result.exitCode >= 0 && result.exitCode <= 255 ? result.exitCode : 1;
}

/** Reads all of standard input (for `--stdin`). */
export async function readStdin(): Promise<string> {
  return (await readStdinBytes())!.toString('utf8');
}

/** All of standard input, or null as soon as it holds more than `maxBytes`. */
export async function readStdinBytes(maxBytes = Infinity): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    chunks.push(b);
    size += b.length;
    if (size > maxBytes) return null;
  }
  return Buffer.concat(chunks);
}

/** Copies a stream to standard output; a reader that went away (`| head`) is not an error. */
export async function writeStdout(stream: NodeJS.ReadableStream): Promise<void> {
  try {
    await pipeline(stream, process.stdout, { end: false });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EPIPE') return;
    throw err;
  }
}

/** A byte count for people: `512 B`, `3.25 KiB`, `1.50 GiB`. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(2)} ${units[i]}`;
}

/** Renders rows as aligned columns. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Prints the notes of a finished command to stderr (timed out, OOM, truncated), unless --json. */
export function reportOutcome(result: ExecutionResult, label: string): void {
  const notes: string[] = [];
  if (result.timedOut) notes.push('timed out');
  if (result.oomKilled) notes.push('killed: out of memory');
  else if (result.signal) notes.push(`killed by ${result.signal}`);
  if (result.stdoutTruncated || result.stderrTruncated) notes.push('output truncated');
  if (notes.length > 0) process.stderr.write(`${label}: ${notes.join(', ')}\n`);
}

/** Prints a command's help on stdout; exit status 0. */
export function printHelp(text: string): number {
  console.log(text);
  return 0;
}

export type SubcommandHandler = (args: string[], sub: string) => Promise<number>;

/**
 * The `faas <command> <subcommand> …` shape shared by the client commands: usage on stderr (exit 2) without a
 * subcommand, usage on stdout for --help, aliases, and one line naming the choices for an unknown subcommand.
 */
export function subcommands(command: string, help: string, handlers: Record<string, SubcommandHandler>, aliases: Record<string, string> = {}): (args: string[]) => Promise<number> {
  return async (args) => {
    const [first, ...rest] = args;
    if (first === undefined) {
      console.error(help);
      return 2;
    }
    if (first === '--help' || first === '-h' || first === 'help') {
      console.log(help);
      return 0;
    }
    const sub = aliases[first] ?? first;
    const handler = handlers[sub];
    if (!handler) throw new CliError(`unknown subcommand "${first}"; one of ${Object.keys(handlers).join(', ')} (see \`faas ${command} --help\`)`);
    return handler(rest, sub);
  };
}
