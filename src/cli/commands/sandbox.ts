/** `faas sandbox`: create, list, inspect, run commands in, copy files in and out of, stop, resume and delete persistent sandboxes. */
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { LIMITS, type CreateSandboxOptions, type ExecOptions, type FaasClient, type Sandbox, type SandboxInfo } from '@faas/sdk';
import { CliError, type Command } from '../command.js';
import { CLIENT_OPTIONS, CLIENT_OPTIONS_HELP, PROCESS_OPTIONS, PROCESS_OPTIONS_HELP, RESOURCE_OPTIONS, RESOURCE_OPTIONS_HELP, clientFrom, envOption, exitCodeOf, numberOption, parseCommandLine, printJson, processOptionsFrom, readLocalFile, readStdinBytes, reportOutcome, table, withErrors, writeStdout, printHelp, subcommands, resourceOptionsFrom } from '../client-options.js';
import { commandArgv } from './run.js';

const HELP = `Usage: faas sandbox <subcommand> [options]

Persistent sandboxes: containers that outlive one command.

Subcommands:
  create [options] [-- COMMAND...]   create a sandbox; prints its id
  ls | list                          list sandboxes
  get ID                             show one sandbox
  exec ID [options] -- COMMAND...    run a command in a sandbox, output live, its exit code as ours
  cp ID:PATH LOCAL | cp LOCAL ID:PATH
                                     copy a file out of a sandbox or into it (- is stdout or stdin)
  stop ID                            stop a sandbox (its files are kept)
  resume ID                          start a stopped sandbox again
  rm | delete ID...                  delete sandboxes

Every subcommand accepts:
${CLIENT_OPTIONS_HELP}

Run \`faas sandbox <subcommand> --help\` for its options.`;

const CREATE_HELP = `Usage: faas sandbox create [options] [-- COMMAND...]

Creates a persistent sandbox and prints its id (with --json: the sandbox). COMMAND, when given, is kept running
in it; none is needed.

Options:
${RESOURCE_OPTIONS_HELP}
  -e, --env K=V      environment variable (repeatable)
  -w, --workdir DIR  working directory (default /workspace)
  --idle-timeout S   stop it after S seconds without activity (default 0: never)
${CLIENT_OPTIONS_HELP}`;

const EXEC_HELP = `Usage: faas sandbox exec ID [options] -- COMMAND [ARG...]

Runs COMMAND (no shell: use \`-- sh -c '...'\` for one) in sandbox ID. Its stdout and stderr are printed live to
ours, and faas exits with its exit code (also with --json, which prints the result object instead).

Options:
${PROCESS_OPTIONS_HELP}
${CLIENT_OPTIONS_HELP}`;

const CP_HELP = `Usage: faas sandbox cp ID:PATH LOCAL
       faas sandbox cp LOCAL ID:PATH

Copies one regular file out of a sandbox (running or stopped) or into a running one. PATH is absolute or relative
to the sandbox's working directory.

  ID:PATH LOCAL  writes the file to LOCAL (replacing it), or into LOCAL under the file's name when LOCAL is a
                 folder; the copy gets the sandbox file's permission bits (without setuid, setgid and sticky,
                 within the umask). LOCAL - prints it on standard output.
  LOCAL ID:PATH  writes LOCAL into the sandbox with LOCAL's permission bits, making parent folders (owned by
                 root); at most ${LIMITS.maxFileWriteBytes / 1024 / 1024} MiB. A PATH ending in "/" (or ID: alone) is a folder: the file keeps its
                 name there. LOCAL - reads standard input (mode 0644).

A local path containing ":" must start with "./" or "/". Folders are not copied (use an exec of tar for them).

Options:
${CLIENT_OPTIONS_HELP}`;

const simpleHelp = (usage: string, what: string): string => `Usage: faas sandbox ${usage}\n\n${what}\n\nOptions:\n${CLIENT_OPTIONS_HELP}`;
const HELPS: Record<string, string> = {
  ls: simpleHelp('ls', 'Lists the sandboxes (alias: list).'),
  get: simpleHelp('get ID', 'Shows one sandbox.'),
  stop: simpleHelp('stop ID', 'Stops a sandbox; its files are kept and `faas sandbox resume ID` starts it again.'),
  resume: simpleHelp('resume ID', 'Starts a stopped sandbox again.'),
  rm: simpleHelp('rm ID...', 'Deletes sandboxes and everything in them (alias: delete).'),
};

const ALIASES: Record<string, string> = { list: 'ls', delete: 'rm' };

function showInfo(s: SandboxInfo): string {
  const limits = s.limits;
  const lines: Array<[string, string]> = [
    ['id', s.id],
    ['status', s.status + (s.stoppedReason ? ` (${s.stoppedReason})` : '')],
    ['image', s.image],
    ['command', s.command ? s.command.join(' ') : '-'],
    ['working dir', s.workingDir],
    ['env', Object.keys(s.env).length ? Object.entries(s.env).map(([k, v]) => `${k}=${v}`).join(' ') : '-'],
    ['memory', limits.memoryMb === null ? 'unlimited' : `${limits.memoryMb} MiB`],
    ['cpus', limits.cpuCores === null ? 'unlimited' : String(limits.cpuCores)],
    ['pids limit', limits.pidsLimit === null ? 'unlimited' : String(limits.pidsLimit)],
    ['network', limits.network],
    ['idle timeout', s.idleTimeoutS === 0 ? 'never' : `${s.idleTimeoutS} s`],
    ['created', s.createdAt],
    ['last active', s.lastActiveAt],
  ];
  const width = Math.max(...lines.map(([k]) => k.length));
  const text = lines.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v}`).join('\n');
  // What happened to it (stops and why, a kept-alive command that exited, execs killed), oldest first.
  const events = (s.lifecycle ?? []).map((e) => {
    const detail = Object.entries(e.detail ?? {})
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(' ');
    return `  ${e.at}  ${e.event}${detail ? ` ${detail}` : ''}`;
  });
  return events.length ? `${text}\nlifecycle:\n${events.join('\n')}` : text;
}

function oneId(positionals: string[], sub: string): string {
  const [id, extra] = positionals;
  if (id === undefined) throw new CliError(`missing the sandbox ID: faas sandbox ${sub} ID`);
  if (extra !== undefined) throw new CliError(`unexpected argument "${extra}"`);
  return id;
}

async function create(args: string[]): Promise<number> {
  const options = { ...CLIENT_OPTIONS, ...RESOURCE_OPTIONS, env: PROCESS_OPTIONS.env, workdir: PROCESS_OPTIONS.workdir, 'idle-timeout': { type: 'string' } } as const;
  const { values, positionals, rest } = parseCommandLine(args, options, 'run `faas sandbox create --help` for usage');
  if (values.help) return printHelp(CREATE_HELP);
  if (positionals.length > 0) throw new CliError(`unexpected argument "${positionals[0]}"; a command goes after "--"`);
  const client = clientFrom(values);
  const opts: CreateSandboxOptions = {};
  if (rest !== undefined && rest.length > 0) opts.argv = rest;
  if (values.image !== undefined) opts.image = values.image;
  const env = envOption(values.env);
  if (env) opts.env = env;
  if (values.workdir !== undefined) opts.workingDir = values.workdir;
  Object.assign(opts, resourceOptionsFrom(values));
  const idle = numberOption('idle-timeout', values['idle-timeout']);
  if (idle !== undefined) opts.idleTimeoutS = idle;
  const sandbox = await withErrors(() => client.containers.create(opts));
  if (values.json) printJson(sandbox);
  else console.log(sandbox.id);
  return 0;
}

async function exec(args: string[]): Promise<number> {
  const { values, positionals, rest } = parseCommandLine(args, { ...CLIENT_OPTIONS, ...PROCESS_OPTIONS }, 'run `faas sandbox exec --help` for usage');
  if (values.help) return printHelp(EXEC_HELP);
  const id = positionals[0];
  if (id === undefined) throw new CliError('missing the sandbox ID: faas sandbox exec ID -- COMMAND...');
  const argv = commandArgv(positionals, rest, 1);
  const client = clientFrom(values);
  const opts: ExecOptions = { argv, ...(await processOptionsFrom(values)) };
  return withErrors(async () => {
    if (values.json) {
      const result = await client.containers.exec(id, opts);
      printJson(result);
      return exitCodeOf(result);
    }
    const result = await client.containers.exec(id, {
      ...opts,
      onStdout: (data) => process.stdout.write(data),
      onStderr: (data) => process.stderr.write(data),
    });
    reportOutcome(result, 'faas sandbox exec');
    return exitCodeOf(result);
  });
}

/** How long one copy may take in all (the client's default deadline suits small requests, not big files). */
const COPY_TIMEOUT_MS = 60 * 60 * 1000;

/** `ID:PATH` (an ID has no "/"), or null for a local path. */
function remoteOf(arg: string): { id: string; path: string } | null {
  const match = /^([A-Za-z0-9][A-Za-z0-9_.-]*):(.*)$/s.exec(arg);
  return match ? { id: match[1]!, path: match[2]! } : null;
}

async function cp(args: string[]): Promise<number> {
  const { values, positionals, rest } = parseCommandLine(args, CLIENT_OPTIONS, 'run `faas sandbox cp --help` for usage');
  if (values.help) return printHelp(CP_HELP);
  const operands = [...positionals, ...(rest ?? [])];
  if (operands.length !== 2) throw new CliError(`give a source and a destination, one of them ID:PATH: faas sandbox cp ID:PATH LOCAL, or faas sandbox cp LOCAL ID:PATH`);
  const [from, to] = operands as [string, string];
  const source = remoteOf(from);
  const target = remoteOf(to);
  if ((source === null) === (target === null)) {
    throw new CliError(
      source ? 'both sides name a sandbox; copy through a local file' : `neither "${from}" nor "${to}" names a sandbox file (ID:PATH; a local path with ":" starts with "./")`,
    );
  }
  const client = clientFrom(values);
  return source ? copyOut(client, source, to, values.json === true) : copyIn(client, from, target!, values.json === true);
}

async function copyOut(client: FaasClient, source: { id: string; path: string }, local: string, json: boolean): Promise<number> {
  const file = await withErrors(() => client.containers.readFileStream(source.id, source.path, { timeoutMs: COPY_TIMEOUT_MS }));
  const content = Readable.fromWeb(file.stream as WebReadableStream<Uint8Array>);
  if (local === '-') {
    await writeStdout(content).catch((err: unknown) => {
      throw new CliError(`reading ${source.id}:${source.path} failed: ${(err as Error).message}`, 1);
    });
    return 0;
  }
  let dest = local;
  if (fs.statSync(local, { throwIfNoEntry: false })?.isDirectory()) dest = path.join(local, path.posix.basename(source.path));
  // Written beside the destination and renamed at the end, so a failed copy leaves no half file under its name.
  const partial = path.join(path.dirname(dest), `.${path.basename(dest)}.faas-cp-${process.pid}`);
  try {
    await pipeline(content, fs.createWriteStream(partial, { flags: 'wx', mode: file.mode & 0o777 }));
    fs.renameSync(partial, dest);
  } catch (err) {
    content.destroy();
    fs.rmSync(partial, { force: true });
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? `no folder ${path.dirname(dest)}` : code === 'EISDIR' ? `${dest} is a folder` : (err as Error).message;
    throw new CliError(`copying ${source.id}:${source.path} to ${dest} failed: ${why}`, 1);
  }
  if (json) printJson({ from: `${source.id}:${source.path}`, to: dest, size: file.size, mode: file.mode });
  else console.log(dest);
  return 0;
}

async function copyIn(client: FaasClient, local: string, target: { id: string; path: string }, json: boolean): Promise<number> {
  let data: Buffer;
  let mode = 0o644;
  if (local === '-') {
    if (target.path === '' || target.path.endsWith('/')) throw new CliError('standard input has no name: give the file\'s PATH after ID:');
    const read = await readStdinBytes(LIMITS.maxFileWriteBytes);
    if (!read) throw new CliError(`standard input holds more than the ${LIMITS.maxFileWriteBytes / 1024 / 1024} MiB a file write may carry`, 1);
    data = read;
  } else {
    ({ data, mode } = readLocalFile(local, { label: local, folders: 'copy folders with an exec of tar', exitCode: 1, maxBytes: LIMITS.maxFileWriteBytes }));
  }
  const remotePath = target.path === '' || target.path.endsWith('/') ? `${target.path}${path.basename(local)}` : target.path;
  const written = await withErrors(() => client.containers.writeFile(target.id, remotePath, data, { mode, timeoutMs: COPY_TIMEOUT_MS }));
  if (json) printJson(written);
  else console.log(`${target.id}:${written.path}`);
  return 0;
}

/** ls, get, stop, resume, rm: only the client options and ids. */
async function simple(args: string[], sub: string): Promise<number> {
  const { values, positionals, rest } = parseCommandLine(args, CLIENT_OPTIONS, `run \`faas sandbox ${sub} --help\` for usage`);
  if (values.help) return printHelp(HELPS[sub] ?? HELP);
  if (rest !== undefined && rest.length > 0) throw new CliError(`unexpected argument "${rest[0]}"`);
  const client: FaasClient = clientFrom(values);
  const json = values.json === true;
  switch (sub) {
    case 'ls': {
      if (positionals.length > 0) throw new CliError(`unexpected argument "${positionals[0]}"`);
      const list = await withErrors(() => client.containers.list());
      if (json) printJson(list);
      else if (list.length === 0) console.log('no sandboxes');
      else {
        console.log(
          table(
            ['ID', 'STATUS', 'IMAGE', 'CREATED', 'LAST ACTIVE'],
            list.map((s) => [s.id, s.status, s.image, s.createdAt, s.lastActiveAt]),
          ),
        );
      }
      return 0;
    }
    case 'get': {
      const sandbox = await withErrors(() => client.containers.get(oneId(positionals, sub)));
      console.log(json ? JSON.stringify(sandbox, null, 2) : showInfo(sandbox));
      return 0;
    }
    case 'stop':
    case 'resume': {
      const id = oneId(positionals, sub);
      const sandbox: Sandbox = await withErrors(() => (sub === 'stop' ? client.containers.stop(id) : client.containers.resume(id)));
      if (json) printJson(sandbox);
      else console.log(`${sandbox.id} ${sandbox.status}`);
      return 0;
    }
    case 'rm': {
      if (positionals.length === 0) throw new CliError('missing the sandbox ID: faas sandbox rm ID...');
      const deleted: string[] = [];
      let failed = 0;
      for (const id of positionals) {
        try {
          await withErrors(() => client.containers.delete(id));
          deleted.push(id);
          if (!json) console.log(id);
        } catch (err) {
          if (positionals.length === 1 || !(err instanceof CliError)) throw err;
          console.error(`faas sandbox rm: ${id}: ${err.message}`);
          failed++;
        }
      }
      if (json) printJson({ deleted });
      return failed > 0 ? 1 : 0;
    }
  }
  throw new CliError(`unknown subcommand "${sub}"`);
}

export const command: Command = {
  summary: 'manage persistent sandboxes: create, ls, get, exec, cp, stop, resume, rm',
  run: subcommands(
    'sandbox',
    HELP,
    { create, ls: simple, get: simple, exec, cp, stop: simple, resume: simple, rm: simple },
    ALIASES,
  ),
};
