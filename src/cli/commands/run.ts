/** `faas run`: run one command in a fresh sandbox, its output live on this terminal, its exit code as ours. */
import { executeRequestToWire, type ExecuteOptions, type ExecutionMode, type FaasClient, type OutputCallbacks } from '@faas/sdk';
import { CliError, type Command } from '../command.js';
import { CLIENT_OPTIONS, CLIENT_OPTIONS_HELP, PROCESS_OPTIONS, PROCESS_OPTIONS_HELP, RESOURCE_OPTIONS, RESOURCE_OPTIONS_HELP, clientFrom, exitCodeOf, parseCommandLine, printJson, processOptionsFrom, reportOutcome, withErrors, resourceOptionsFrom } from '../client-options.js';

const HELP = `Usage: faas run [options] -- COMMAND [ARG...]

Runs COMMAND (no shell: use \`-- sh -c '...'\` for one) in a fresh sandbox. Its stdout and stderr are printed
live to ours, and faas exits with its exit code.

Options:
  --mode MODE        ephemeral (default), persistent, cached or checkpointed
  --checkpoint ID    snapshot to start from (checkpointed and cached modes)
${RESOURCE_OPTIONS_HELP}
${PROCESS_OPTIONS_HELP}
${CLIENT_OPTIONS_HELP}
                     (with --json the result object is printed at the end; the exit code is still the command's)

With --mode persistent the sandbox is kept after the command: its id is printed on stderr (with --json: the
result's containerId). With --mode checkpointed the snapshot taken at the end is printed on stderr
("snapshot snap_…"); with --mode cached, whether the cache answered and the key ("cache hit <key>").
Output is then printed when the command ends rather than live.

Examples:
  faas run -- echo hello
  faas run --image faas/python:3 --memory 256 -- python3 -c 'print(6*7)'
  echo data | faas run -i -- wc -c
  faas run --image faas/python:3 -f job.py -f data.csv=/data/in.csv -- python3 job.py`;

const OPTIONS = { ...CLIENT_OPTIONS, ...PROCESS_OPTIONS, ...RESOURCE_OPTIONS, mode: { type: 'string' }, checkpoint: { type: 'string' } } as const;

/** The command to run: what follows `--`, or the positionals when there is no `--`. */
export function commandArgv(positionals: string[], rest: string[] | undefined, skip = 0): string[] {
  const before = positionals.slice(skip);
  if (rest !== undefined && before.length > 0) {
    throw new CliError(`unexpected argument "${before[0]}" before "--"; options go first, the command after "--"`);
  }
  const argv = rest ?? before;
  if (argv.length === 0) throw new CliError('missing the command to run, e.g. `-- echo hello`');
  return argv;
}

/**
 * Persistent mode with live output: a streamed execute does not say which sandbox it kept (its exit event has no
 * sandbox id), so create the sandbox, then exec in it, and tell the user its id.
 */
async function runPersistent(client: FaasClient, options: ExecuteOptions, live: OutputCallbacks): Promise<number> {
  const { argv, env, workingDir, stdin, files, timeoutMs, image, memoryMb, cpuCores, pidsLimit, network, readOnly } = options;
  // Validate everything before creating anything.
  executeRequestToWire(options);
  const sandbox = await client.containers.create({ image, memoryMb, cpuCores, pidsLimit, network, readOnly, env, workingDir });
  process.stderr.write(`faas run: sandbox ${sandbox.id} kept (remove it with \`faas sandbox rm ${sandbox.id}\`)\n`);
  const result = await sandbox.exec({ argv, stdin, files, timeoutMs, ...live });
  reportOutcome(result, 'faas run');
  return exitCodeOf(result);
}

export const command: Command = {
  summary: 'run a command in a fresh sandbox, streaming its output',
  async run(args) {
    const { values, positionals, rest } = parseCommandLine(args, OPTIONS, 'run `faas run --help` for usage');
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    if (values.mode === 'branched') {
      throw new CliError('--mode branched runs variants on copies of a parent: use `faas fork PARENT -- COMMAND` (see `faas fork --help`)');
    }
    const argv = commandArgv(positionals, rest);
    const client = clientFrom(values);
    const options: ExecuteOptions = { argv };
    if (values.mode !== undefined) options.mode = values.mode as ExecutionMode;
    if (values.checkpoint !== undefined) options.checkpoint = values.checkpoint;
    if (values.image !== undefined) options.image = values.image;
    Object.assign(options, resourceOptionsFrom(values), await processOptionsFrom(values));

    return withErrors(async () => {
      if (values.json) {
        const result = await client.execute(options);
        printJson(result);
        return exitCodeOf(result);
      }
      const live = { onStdout: (data: string) => process.stdout.write(data), onStderr: (data: string) => process.stderr.write(data) };
      if (options.mode === 'persistent') return runPersistent(client, options, live);
      if (options.mode === 'checkpointed' || options.mode === 'cached') {
        // The snapshot id and the cache key come with the answer.
        const result = await client.execute(options);
        process.stdout.write(result.stdout);
        process.stderr.write(result.stderr);
        if (result.snapshotId !== undefined) console.error(`snapshot ${result.snapshotId}`);
        if (result.cacheKey !== undefined) console.error(`cache ${result.cached ? 'hit' : 'miss'} ${result.cacheKey}`);
        reportOutcome(result, 'faas run');
        return exitCodeOf(result);
      }
      const result = await client.execute({ ...options, ...live });
      reportOutcome(result, 'faas run');
      return exitCodeOf(result);
    });
  },
};
