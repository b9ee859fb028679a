/** `faas fork PARENT -- COMMAND…` / `faas fork PARENT --variant CMD --variant CMD`: branched mode. */
import type { ForkOptions } from '@faas/sdk';
import { CliError, type Command } from '../command.js';
import { CLIENT_OPTIONS, CLIENT_OPTIONS_HELP, PROCESS_OPTIONS, clientFrom, parseCommandLine, printJson, processOptionsFrom, withErrors } from '../client-options.js';

const HELP = `Usage: faas fork PARENT [options] -- COMMAND...
       faas fork PARENT --variant 'CMD' [--variant 'CMD'...] [options]

Runs commands in parallel, each on its own copy of PARENT: an execution id (within its retention window,
15 minutes by default), a snapshot id, or a live sandbox id. Prints each variant's output and snapshot; the exit
status is 0 when every variant ran and exited 0.

Options:
  --variant CMD      a shell command run as one variant (repeatable, at most 16)
  -e, --env K=V      environment variable for every variant (repeatable)
  -w, --workdir DIR  directory to run in
  --timeout MS       per-variant timeout
  -f, --file LOCAL[=DEST]
                     copy a local file into every variant before it runs (repeatable)
  --keep             keep each variant as a live sandbox
${CLIENT_OPTIONS_HELP}`;

export const command: Command = {
  summary: 'run variants in parallel on copies of an execution, snapshot or sandbox',
  async run(args) {
    const options = {
      ...CLIENT_OPTIONS,
      variant: { type: 'string', multiple: true },
      env: PROCESS_OPTIONS.env,
      workdir: PROCESS_OPTIONS.workdir,
      timeout: PROCESS_OPTIONS.timeout,
      file: PROCESS_OPTIONS.file,
      keep: { type: 'boolean' },
    } as const;
    const { values, positionals, rest } = parseCommandLine(args, options, 'run `faas fork --help` for usage');
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const [parent, ...extra] = positionals;
    if (parent === undefined) throw new CliError('missing PARENT: faas fork PARENT -- COMMAND (see `faas fork --help`)');
    const words = [...extra, ...(rest ?? [])];
    const variants = values.variant ?? [];
    if (variants.length > 0 && words.length > 0) throw new CliError('give either --variant options or one command after --, not both');
    if (variants.length === 0 && words.length === 0) throw new CliError('nothing to run: add -- COMMAND or --variant CMD');
    const opts: ForkOptions = { parent, ...(await processOptionsFrom(values)) };
    if (variants.length > 0) opts.variants = variants.map((command) => ({ command }));
    else opts.command = words.join(' ');
    if (values.keep) opts.keep = true;
    const client = clientFrom(values);
    const result = await withErrors(() => client.fork(opts));
    if (values.json) printJson(result);
    else {
      for (const v of result.variants) {
        if (v.status === 'ok') {
          console.log(`--- variant ${v.index}: exit ${v.result.exitCode}, snapshot ${v.snapshotId}${v.result.containerId ? `, sandbox ${v.result.containerId}` : ''}`);
          if (v.result.stdout) process.stdout.write(v.result.stdout);
          if (v.result.stderr) process.stderr.write(v.result.stderr);
        } else console.log(`--- variant ${v.index}: ${v.error}: ${v.message}`);
      }
    }
    return result.variants.every((v) => v.status === 'ok' && v.result.exitCode === 0) ? 0 : 1;
  },
};
