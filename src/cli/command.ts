/** What every `faas` subcommand implements, and the error it throws for bad usage. */
export interface Command {
  /** One line for `faas --help`. */
  summary: string;
  /** Runs with the arguments after the subcommand's name; resolves to the process exit code. */
  run(args: string[]): Promise<number>;
}

/** A problem the user can fix (bad option, unreachable gateway): printed as one line, no stack trace. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
  }
}
