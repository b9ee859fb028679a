/** `faas cache clear [--image IMAGE] [--key KEY]`: results of cached-mode executions. */
import { CliError, type Command } from '../command.js';
import { CLIENT_OPTIONS, CLIENT_OPTIONS_HELP, clientFrom, parseCommandLine, printHelp, printJson, subcommands, withErrors } from '../client-options.js';

const HELP = `Usage: faas cache clear [--image IMAGE | --key KEY]

Drops cached results of \`faas run --mode cached\` executions: all of them, those of one image (tag or id), or one key.

Options:
  --image IMAGE      only the results of this image
  --key KEY          only this result (its cache_key)
${CLIENT_OPTIONS_HELP}`;

async function clear(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, { ...CLIENT_OPTIONS, image: { type: 'string' }, key: { type: 'string' } }, 'run `faas cache --help` for usage');
  if (values.help) return printHelp(HELP);
  if (positionals.length > 0) throw new CliError(`unexpected argument "${positionals[0]}"`);
  if (values.image !== undefined && values.key !== undefined) throw new CliError('give --image or --key, not both');
  const client = clientFrom(values);
  let deleted: number;
  if (values.key !== undefined) {
    const key = values.key;
    await withErrors(() => client.cache.delete(key));
    deleted = 1;
  } else {
    const image = values.image;
    deleted = await withErrors(() => client.cache.clear(image !== undefined ? { image } : {}));
  }
  if (values.json) printJson({ deleted });
  else console.log(`${deleted} cached result${deleted === 1 ? '' : 's'} deleted`);
  return 0;
}

export const command: Command = {
  summary: 'results of cached-mode executions: clear',
  run: subcommands('cache', HELP, { clear }),
};
