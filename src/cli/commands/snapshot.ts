/** `faas snapshot ls|show|rm`: snapshots of sandboxes. */
import type { Snapshot } from '@faas/sdk';
import { CliError, type Command } from '../command.js';
import { CLIENT_OPTIONS, CLIENT_OPTIONS_HELP, clientFrom, parseCommandLine, printJson, table, withErrors } from '../client-options.js';

const HELP = `Usage: faas snapshot <subcommand> [options]

Subcommands:
  ls | list          list snapshots
  show ID            one snapshot: image, parent, sizes
  rm ID [--force]    delete a snapshot (refused while others name it as parent, unless --force)

Every subcommand accepts:
${CLIENT_OPTIONS_HELP}`;

function mib(n: number): string {
  return `${(n / 1048576).toFixed(2)} MiB`;
}

function describe(s: Snapshot): string {
  return [
    `id:        ${s.id}`,
    `name:      ${s.name ?? '-'}`,
    `image:     ${s.image} (${s.imageId})`,
    `parent:    ${s.parent ?? '-'}`,
    `source:    ${s.source ?? '-'}`,
    `files:     ${s.files} (${s.deletions} deleted)`,
    `size:      ${mib(s.sizeBytes)} of content, ${mib(s.logicalBytes)} archive, ${mib(s.storedBytes)} stored`,
    `created:   ${s.createdAt}`,
  ].join('\n');
}

export const command: Command = {
  summary: 'snapshots of sandboxes: ls, show, rm',
  async run(args) {
    const [sub, ...rest] = args;
    if (sub === undefined) {
      console.error(HELP);
      return 2;
    }
    if (sub === '--help' || sub === '-h' || sub === 'help') {
      console.log(HELP);
      return 0;
    }
    const { values, positionals } = parseCommandLine(rest, { ...CLIENT_OPTIONS, force: { type: 'boolean' } }, 'run `faas snapshot --help` for usage');
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const client = clientFrom(values);
    switch (sub) {
      case 'ls':
      case 'list': {
        const list = await withErrors(() => client.snapshots.list());
        if (values.json) printJson(list);
        else if (list.length === 0) console.log('no snapshots');
        else console.log(table(['ID', 'NAME', 'IMAGE', 'PARENT', 'SIZE', 'STORED', 'CREATED'], list.map((s) => [s.id, s.name ?? '-', s.image, s.parent ?? '-', mib(s.sizeBytes), mib(s.storedBytes), s.createdAt])));
        return 0;
      }
      case 'show':
      case 'rm': {
        const id = positionals[0];
        if (id === undefined) throw new CliError(`missing ID: faas snapshot ${sub} ID`);
        if (sub === 'show') {
          const s = await withErrors(() => client.snapshots.get(id));
          if (values.json) printJson(s);
          else console.log(describe(s));
        } else {
          await withErrors(() => client.snapshots.delete(id, { force: values.force === true }));
          if (!values.json) console.log(`deleted ${id}`);
        }
        return 0;
      }
      default:
        throw new CliError(`unknown subcommand "${sub}"; one of ls, show, rm (see \`faas snapshot --help\`)`);
    }
  },
};
