/**
 * Entry of the `faas` command. Each subcommand lives in its own module under ./commands and is loaded only when
 * used, so `faas storage ...` does not pay for the gateway and `faas run` does not open the database.
 */
import { CliError, type Command } from './command.js';

const COMMANDS: Record<string, () => Promise<{ command: Command }>> = {
  serve: () => import('./commands/serve.js'),
  run: () => import('./commands/run.js'),
  sandbox: () => import('./commands/sandbox.js'),
  shell: () => import('./commands/shell.js'),
  attach: () => import('./commands/attach.js'),
  images: () => import('./commands/images.js'),
  storage: () => import('./commands/storage.js'),
  tenants: () => import('./commands/tenants.js'),
  keys: () => import('./commands/keys.js'),
  pools: () => import('./commands/pools.js'),
  fork: () => import('./commands/fork.js'),
  snapshot: () => import('./commands/snapshot.js'),
  cache: () => import('./commands/cache.js'),
};

async function usage(): Promise<string> {
  const lines: string[] = [];
  for (const name of Object.keys(COMMANDS)) {
    const { command } = await COMMANDS[name]!();
    lines.push(`  faas ${name.padEnd(8)} ${command.summary}`);
  }
  return ['Usage: faas <command> [options]', '', 'Commands:', ...lines, '', 'Run `faas <command> --help` for its options.'].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(await usage());
    return name === undefined ? 2 : 0;
  }
  const load = COMMANDS[name];
  if (!load) {
    console.error(`faas: unknown command "${name}"\n\n${await usage()}`);
    return 2;
  }
  const { command } = await load();
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof CliError) {
      console.error(`faas ${name}: ${err.message}`);
      return err.exitCode;
    }
    throw err;
  }
}
