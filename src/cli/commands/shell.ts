/**
 * `faas shell ID`: an interactive terminal in a sandbox over its WebSocket. The command runs in a remote
 * pseudo-terminal; our terminal is put in raw mode so every key (Ctrl-C included, as the byte \x03 that the
 * remote pty turns into SIGINT) goes to it. Window size changes are forwarded. The remote exit code is ours, and
 * the terminal is restored on every way out.
 */
import { StringDecoder } from 'node:string_decoder';
import type { SandboxStream } from '@faas/sdk';
import { CliError, type Command } from '../command.js';
import { CLIENT_OPTIONS, clientFrom, parseCommandLine, withErrors } from '../client-options.js';

const HELP = `Usage: faas shell ID [options]

Opens an interactive terminal in sandbox ID. Exit the remote shell (\`exit\`, Ctrl-D) to leave; faas exits with
its exit code.

Options:
  --cmd COMMAND      what to run in the terminal (default /bin/sh)
  --url URL          gateway URL (default $FAAS_URL, then http://127.0.0.1:8080)
  --api-key KEY      API key (default $FAAS_API_KEY)
  -h, --help         show this help`;

const OPTIONS = { url: CLIENT_OPTIONS.url, 'api-key': CLIENT_OPTIONS['api-key'], help: CLIENT_OPTIONS.help, cmd: { type: 'string' } } as const;

const SIGNAL_EXIT: Record<string, number> = { SIGTERM: 143, SIGHUP: 129 };

function terminalSize(): { cols: number; rows: number } {
  const cols = process.stdout.isTTY ? process.stdout.columns : undefined;
  const rows = process.stdout.isTTY ? process.stdout.rows : undefined;
  return { cols: cols && cols > 0 ? Math.min(cols, 1000) : 80, rows: rows && rows > 0 ? Math.min(rows, 1000) : 24 };
}

/** Puts stdin in raw mode when it is a terminal; the returned function undoes it (idempotent). */
function rawMode(): () => void {
  const stdin = process.stdin;
  if (!stdin.isTTY) return () => undefined;
  stdin.setRawMode(true);
  let restored = false;
  const restore = (): void => {
    if (restored) return;
    restored = true;
    try {
      stdin.setRawMode(false);
    } catch {
      // the terminal is gone
    }
  };
  process.once('exit', restore);
  return restore;
}

async function runShell(stream: SandboxStream, cmd: string): Promise<number> {
  const cleanups: Array<() => void> = [];
  const cleanup = (): void => {
    for (const fn of cleanups.splice(0).reverse()) fn();
  };
  try {
    const { cols, rows } = terminalSize();
    const execId = await stream.exec(cmd, { pty: true, cols, rows });

    cleanups.push(rawMode());
    const decoder = new StringDecoder('utf8');
    const send = (data: string, eof = false): void => {
      if (data === '' && !eof) return;
      stream.send({ type: 'stdin', data, exec_id: execId, ...(eof ? { eof: true } : {}) }).catch(() => undefined);
    };
    const onData = (chunk: Buffer | string): void => send(typeof chunk === 'string' ? chunk : decoder.write(chunk));
    const onEnd = (): void => send(decoder.end(), true);
    process.stdin.on('data', onData);
    process.stdin.on('end', onEnd);
    process.stdin.resume();
    cleanups.push(() => {
      process.stdin.off('data', onData);
      process.stdin.off('end', onEnd);
      process.stdin.pause();
    });

    // Without a terminal, Ctrl-C reaches us as SIGINT: pass it on the same way a terminal would.
    const onSigint = (): void => send('\x03');
    process.on('SIGINT', onSigint);
    cleanups.push(() => process.off('SIGINT', onSigint));

    const onResize = (): void => {
      const size = terminalSize();
      stream.send({ type: 'resize', cols: size.cols, rows: size.rows, exec_id: execId }).catch(() => undefined);
    };
    if (process.stdout.isTTY) {
      process.stdout.on('resize', onResize);
      cleanups.push(() => process.stdout.off('resize', onResize));
    }

    let killedBy: string | undefined;
    for (const signal of Object.keys(SIGNAL_EXIT) as NodeJS.Signals[]) {
      const handler = (): void => {
        killedBy = signal;
        void stream.close();
      };
      process.on(signal, handler);
      cleanups.push(() => process.off(signal, handler));
    }

    for await (const event of stream) {
      switch (event.type) {
        case 'stdout':
        case 'stderr':
          if (event.exec_id === undefined || event.exec_id === execId) {
            (event.type === 'stdout' ? process.stdout : process.stderr).write(event.data);
          }
          break;
        case 'exit':
          if (event.exec_id === execId) return event.code >= 0 && event.code <= 255 ? event.code : 1;
          break;
        case 'error':
          if (event.exec_id === execId) throw new CliError(event.message, 1);
          if (event.exec_id === undefined) process.stderr.write(`\r\nfaas shell: ${event.message}\r\n`);
          break;
        default:
          break;
      }
    }
    if (killedBy !== undefined) return SIGNAL_EXIT[killedBy] ?? 1;
    throw new CliError('the gateway closed the stream before the shell exited', 1);
  } finally {
    cleanup();
    await stream.close().catch(() => undefined);
  }
}

export const command: Command = {
  summary: 'open an interactive terminal in a sandbox',
  async run(args) {
    const { values, positionals, rest } = parseCommandLine(args, OPTIONS, 'run `faas shell --help` for usage');
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const [id, extra] = positionals;
    if (id === undefined) throw new CliError('missing the sandbox ID: faas shell ID');
    if (extra !== undefined || (rest !== undefined && rest.length > 0)) {
      throw new CliError(`unexpected argument "${extra ?? rest?.[0]}"; use --cmd to choose what runs`);
    }
    const cmd = values.cmd ?? '/bin/sh';
    if (cmd.trim() === '') throw new CliError('--cmd must not be empty');
    const client = clientFrom(values);
    return withErrors(async () => runShell(await client.stream(id), cmd));
  },
};
