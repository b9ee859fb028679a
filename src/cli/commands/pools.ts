/** `faas pools`: warm pools of ready sandboxes for fast ephemeral executions. */
import type { PoolInfo, PrewarmOptions } from '@faas/sdk';
import { CliError, type Command } from '../command.js';
import { CLIENT_OPTIONS, CLIENT_OPTIONS_HELP, PROCESS_OPTIONS, RESOURCE_OPTIONS, RESOURCE_OPTIONS_HELP, clientFrom, numberOption, parseCommandLine, printJson, table, withErrors, printHelp, subcommands, resourceOptionsFrom } from '../client-options.js';

const HELP = `Usage: faas pools <subcommand> [options]

Warm pools: sandboxes started ahead of time, taken by ephemeral executions of the same image and limits.

Subcommands:
  prewarm --count N [options]   keep N ready sandboxes of an image and resource shape (0 empties the pool)
  ls | list                     list the pools

Every subcommand accepts:
${CLIENT_OPTIONS_HELP}`;

const PREWARM_HELP = `Usage: faas pools prewarm --count N [options]

Keeps N ready sandboxes for executions with this image and these limits; N = 0 empties the pool. Answers once
the pool is full (or after --wait seconds) and prints it (with --json: the pool object).

Options:
  --count N          ready sandboxes to keep (required)
  --wait S           seconds to wait for the pool to be full (default 60; 0 answers at once)
${RESOURCE_OPTIONS_HELP}
  -w, --workdir DIR  working directory (default /workspace)
${CLIENT_OPTIONS_HELP}`;

const LS_HELP = `Usage: faas pools ls\n\nLists the warm pools: size, ready, in use, hits and misses (alias: list).\n\nOptions:\n${CLIENT_OPTIONS_HELP}`;

function limits(p: PoolInfo): string {
  const parts = [`mem=${p.memoryMb ?? '-'}`, `cpus=${p.cpuCores ?? '-'}`, `pids=${p.pidsLimit ?? '-'}`, `net=${p.network}`, ...(p.readOnly ? ['read-only'] : [])];
  return parts.join(' ');
}

function describe(p: PoolInfo): string {
  return `${p.image} (${limits(p)}, ${p.workingDir}): size ${p.size}, ready ${p.ready}, creating ${p.creating}, in use ${p.inUse}${p.error ? `; error: ${p.error}` : ''}`;
}

async function prewarm(args: string[]): Promise<number> {
  const options = { ...CLIENT_OPTIONS, ...RESOURCE_OPTIONS, workdir: PROCESS_OPTIONS.workdir, count: { type: 'string' }, wait: { type: 'string' } } as const;
  const { values, positionals } = parseCommandLine(args, options, 'run `faas pools prewarm --help` for usage');
  if (values.help) return printHelp(PREWARM_HELP);
  if (positionals.length > 0) throw new CliError(`unexpected argument "${positionals[0]}"`);
  const count = numberOption('count', values.count);
  if (count === undefined) throw new CliError('missing --count N: faas pools prewarm --count N [options]');
  const opts: PrewarmOptions = { count };
  if (values.image !== undefined) opts.image = values.image;
  if (values.workdir !== undefined) opts.workingDir = values.workdir;
  const waitS = numberOption('wait', values.wait);
  if (waitS !== undefined) opts.waitS = waitS;
  Object.assign(opts, resourceOptionsFrom(values));
  const client = clientFrom(values);
  const pool = await withErrors(() => client.pools.prewarm(opts));
  if (values.json) printJson(pool);
  else console.log(describe(pool));
  return 0;
}

async function ls(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, CLIENT_OPTIONS, 'run `faas pools ls --help` for usage');
  if (values.help) return printHelp(LS_HELP);
  if (positionals.length > 0) throw new CliError(`unexpected argument "${positionals[0]}"`);
  const client = clientFrom(values);
  const pools = await withErrors(() => client.pools.list());
  if (values.json) printJson(pools);
  else if (pools.length === 0) console.log('no pools');
  else {
    console.log(
      table(
        ['IMAGE', 'WORKDIR', 'LIMITS', 'SIZE', 'READY', 'CREATING', 'IN USE', 'HITS', 'MISSES', 'ERROR'],
        pools.map((p) => [p.image, p.workingDir, limits(p), String(p.size), String(p.ready), String(p.creating), String(p.inUse), String(p.hits), String(p.misses), p.error ?? '-']),
      ),
    );
  }
  return 0;
}

export const command: Command = {
  summary: 'warm pools of ready sandboxes: prewarm, ls',
  run: subcommands('pools', HELP, { prewarm, ls }, { list: 'ls' }),
};
