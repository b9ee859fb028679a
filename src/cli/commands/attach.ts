/** `faas attach ID`: follow a sandbox's events as readable lines until Ctrl-C or the end of the stream. */
import type { StreamEvent } from '@faas/sdk';
import { CliError, type Command } from '../command.js';
import { CLIENT_OPTIONS, CLIENT_OPTIONS_HELP, clientFrom, parseCommandLine, withErrors } from '../client-options.js';

const HELP = `Usage: faas attach ID [options]

Follows the events of sandbox ID (output, file changes, processes, custom events) and prints one line each,
until Ctrl-C (exit 0) or the end of the stream. A lost connection is an error (exit 1).

Options:
${CLIENT_OPTIONS_HELP}
                     (with --json: one JSON event a line, as the gateway sent it)`;

function time(): string {
  return new Date().toISOString().slice(11, 23);
}

function tag(execId: string | undefined): string {
  return execId === undefined ? '' : ` [${execId.length > 12 ? execId.slice(0, 12) : execId}]`;
}

/** Turns events into lines; output is cut at newlines, a partial line is kept until it is complete (or the exit). */
export class EventPrinter {
  private readonly partial = new Map<string, string>();
  constructor(private readonly write: (line: string) => void) {}

  event(event: StreamEvent): void {
    switch (event.type) {
      case 'stdout':
      case 'stderr': {
        const key = `${event.type}\0${event.exec_id ?? ''}`;
        const text = (this.partial.get(key) ?? '') + event.data;
        const lines = text.split('\n');
        this.partial.set(key, lines.pop() ?? '');
        for (const line of lines) this.write(`${time()} ${event.type}${tag(event.exec_id)}: ${line.replace(/\r$/, '')}`);
        break;
      }
      case 'exit': {
        this.flush(event.exec_id);
        const notes = [event.signal ? `signal ${event.signal}` : '', event.timed_out ? 'timed out' : '', event.oom_killed ? 'out of memory' : '']
          .filter(Boolean)
          .join(', ');
        this.write(`${time()} exit${tag(event.exec_id)}: code ${event.code}${notes ? ` (${notes})` : ''}`);
        break;
      }
      case 'file_event':
        this.write(`${time()} file ${event.event}: ${event.path}${event.from !== undefined ? ` (from ${event.from})` : ''}`);
        break;
      case 'process_event':
        this.write(`${time()} process ${event.event}${tag(event.exec_id)}: pid ${event.pid} ${event.command}`);
        break;
      case 'custom':
        this.write(`${time()} custom ${event.name}: ${JSON.stringify(event.data)}`);
        break;
      case 'error':
        this.write(`${time()} error${tag(event.exec_id)}: ${event.message}${event.code ? ` (${event.code})` : ''}`);
        break;
      case 'heartbeat':
        break;
    }
  }

  /** Prints what is left of partial lines (of one exec, or all). */
  flush(execId?: string): void {
    for (const [key, rest] of this.partial) {
      const [type, id] = key.split('\0') as [string, string];
      if (execId !== undefined && id !== execId) continue;
      if (rest !== '') this.write(`${time()} ${type}${tag(id === '' ? undefined : id)}: ${rest}`);
      this.partial.delete(key);
    }
  }
}

export const command: Command = {
  summary: "follow a sandbox's events (output, files, processes) as lines",
  async run(args) {
    const { values, positionals, rest } = parseCommandLine(args, CLIENT_OPTIONS, 'run `faas attach --help` for usage');
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const [id, extra] = positionals;
    if (id === undefined) throw new CliError('missing the sandbox ID: faas attach ID');
    if (extra !== undefined || (rest !== undefined && rest.length > 0)) throw new CliError(`unexpected argument "${extra ?? rest?.[0]}"`);
    const client = clientFrom(values);
    return withErrors(async () => {
      const stream = await client.stream(id);
      const onSigint = (): void => void stream.close();
      process.on('SIGINT', onSigint);
      process.on('SIGTERM', onSigint);
      const printer = new EventPrinter((line) => process.stdout.write(`${line}\n`));
      try {
        for await (const event of stream) {
          if (values.json) {
            if (event.type !== 'heartbeat') process.stdout.write(`${JSON.stringify(event)}\n`);
          } else printer.event(event);
        }
        return 0;
      } finally {
        printer.flush();
        process.off('SIGINT', onSigint);
        process.off('SIGTERM', onSigint);
        await stream.close();
      }
    });
  },
};
