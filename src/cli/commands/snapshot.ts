/** `faas snapshot ls|show|rm`: snapshots of sandboxes. */
import type { Snapshot } from '@faas/sdk';
import { CliError, type Command } from '../command.js';
import { CLIENT_OPTIONS, CLIENT_OPTIONS_HELP, clientFrom, formatBytes, parseCommandLine, printHelp, printJson, subcommands, table, withErrors } from '../client-options.js';

const HELP = `Usage: faas snapshot <subcommand> [options]

Subcommands:
  ls | list          list snapshots
  show ID            one snapshot: image, parent, sizes
  rm ID [--force]    delete a snapshot (refused while others name it as parent, unless --force)

Every subcommand accepts:
${CLIENT_OPTIONS_HELP}`;

function describe(s: Snapshot): string {
  return [
    `id:        ${s.id}`,
    `name:      ${s.name ?? '-'}`,
    `image:     ${s.image} (${s.imageId})`,
    `parent:    ${s.parent ?? '-'}`,
    `source:    ${s.source ?? '-'}`,
    `files:     ${s.files} (${s.deletions} deleted)`,
    `size:      ${formatBytes(s.sizeBytes)} of content, ${formatBytes(s.logicalBytes)} archive, ${formatBytes(s.storedBytes)} stored`,
    `created:   ${s.createdAt}`,
  ].join('\n');
}

async function ls(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, CLIENT_OPTIONS, 'run `faas snapshot --help` for usage');
  if (values.help) return printHelp(HELP);
  if (positionals.length > 0) throw new CliError(`unexpected argument "${positionals[0]}"`);
  const list = await withErrors(() => clientFrom(values).snapshots.list());
  if (values.json) printJson(list);
  else if (list.length === 0) console.log('no snapshots');
  else console.log(table(['ID', 'NAME', 'IMAGE', 'PARENT', 'SIZE', 'STORED', 'CREATED'], list.map((s) => [s.id, s.name ?? '-', s.image, s.parent ?? '-', formatBytes(s.sizeBytes), formatBytes(s.storedBytes), s.createdAt])));
  return 0;
}

/** The one ID a subcommand takes. */
function onlyId(positionals: string[], sub: string): string {
  const [id, extra] = positionals;
  if (id === undefined) throw new CliError(`missing ID: faas snapshot ${sub} ID`);
  if (extra !== undefined) throw new CliError(`unexpected argument "${extra}"`);
  return id;
}

async function show(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, CLIENT_OPTIONS, 'run `faas snapshot --help` for usage');
  if (values.help) return printHelp(HELP);
  const id = onlyId(positionals, 'show');
  const s = await withErrors(() => clientFrom(values).snapshots.get(id));
  if (values.json) printJson(s);
  else console.log(describe(s));
  return 0;
}

async function rm(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, { ...CLIENT_OPTIONS, force: { type: 'boolean' } }, 'run `faas snapshot --help` for usage');
  if (values.help) return printHelp(HELP);
  const id = onlyId(positionals, 'rm');
  await withErrors(() => clientFrom(values).snapshots.delete(id, { force: values.force === true }));
  if (!values.json) console.log(`deleted ${id}`);
  return 0;
}

export const command: Command = {
  summary: 'snapshots of sandboxes: ls, show, rm',
  run: subcommands('snapshot', HELP, { ls, show, rm }, { list: 'ls' }),
};
