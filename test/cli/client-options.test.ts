/** Pure logic of the client subcommands (no gateway). */
import { describe, expect, it } from 'vitest';
import { ConnectionError, FaasError, NotFoundError, ValidationError } from '@faas/sdk';
import { CliError } from '../../src/cli/command.js';
import { envOption, numberOption, parseCommandLine, table, toCliError, CLIENT_OPTIONS } from '../../src/cli/client-options.js';
import { commandArgv } from '../../src/cli/commands/run.js';
import { EventPrinter } from '../../src/cli/commands/attach.js';

describe('client options', () => {
  it('splits options from the command at --', () => {
    const { values, positionals, rest } = parseCommandLine(['--json', 'id', '--', 'sh', '-c', 'x --json'], CLIENT_OPTIONS, 'hint');
    expect(values.json).toBe(true);
    expect(positionals).toEqual(['id']);
    expect(rest).toEqual(['sh', '-c', 'x --json']);
    expect(commandArgv(positionals, rest, 1)).toEqual(['sh', '-c', 'x --json']);
    expect(() => commandArgv(['stray'], ['ls'])).toThrow(/before "--"/);
    expect(commandArgv(['echo', 'hi'], undefined)).toEqual(['echo', 'hi']);
    expect(() => parseCommandLine(['--nope'], CLIENT_OPTIONS, 'see help')).toThrow(/^Unknown option '--nope'; see help$/);
  });

  it('parses env and numbers, naming the option on error', () => {
    expect(envOption(['A=1', 'B=x=y', 'C='])).toEqual({ A: '1', B: 'x=y', C: '' });
    expect(() => envOption(['=x'])).toThrow(CliError);
    expect(numberOption('cpus', '0.5', true)).toBe(0.5);
    expect(() => numberOption('memory', '1.5')).toThrow('--memory must be an integer, got "1.5"');
    expect(() => numberOption('memory', 'abc')).toThrow(/--memory/);
  });

  it('turns SDK errors into one-line CLI errors', () => {
    const conn = toCliError(new ConnectionError('connection_error', 'cannot reach the gateway at http://h:1: connect ECONNREFUSED h:1', { url: 'http://h:1', reason: 'connect ECONNREFUSED h:1' })) as CliError;
    expect(conn.message).toBe('cannot reach the gateway at http://h:1: connect ECONNREFUSED h:1');
    expect(conn.exitCode).toBe(1);
    const nf = toCliError(new NotFoundError('not_found', 'no sandbox x', { status: 404 })) as CliError;
    expect([nf.message, nf.exitCode]).toEqual(['no sandbox x (not_found)', 1]);
    const local = toCliError(new ValidationError('validation_error', 'invalid execute option `cpuCores`: Too big', { field: 'cpuCores' })) as CliError;
    expect([local.message, local.exitCode]).toEqual(['invalid --cpus: Too big', 2]);
    const plain = new Error('bug');
    expect(toCliError(plain)).toBe(plain);
    expect(toCliError(new FaasError('internal_error', 'oops', { status: 500 }))).toBeInstanceOf(CliError);
  });

  it('renders tables', () => {
    expect(table(['ID', 'STATUS'], [['abc', 'running'], ['a', 'stopped']])).toBe('ID   STATUS\nabc  running\na    stopped');
  });
});

describe('attach lines', () => {
  it('prints complete lines per exec and stream, and the rest at exit', () => {
    const lines: string[] = [];
    const p = new EventPrinter((l) => lines.push(l.replace(/^\S+ /, '')));
    p.event({ type: 'stdout', data: 'one\ntw', exec_id: 'e1' });
    p.event({ type: 'stderr', data: 'err\n', exec_id: 'e1' });
    p.event({ type: 'stdout', data: 'o\nlast', exec_id: 'e1' });
    p.event({ type: 'exit', code: 3, exec_id: 'e1', signal: null });
    p.event({ type: 'file_event', path: 'a.txt', event: 'created' });
    p.event({ type: 'process_event', pid: 7, command: 'sleep 1', event: 'started', exec_id: 'e2' });
    p.event({ type: 'custom', name: 'state', data: { id: 'x' } });
    p.event({ type: 'heartbeat' });
    p.event({ type: 'error', message: 'bad', code: 'validation_error' });
    expect(lines).toEqual([
      'stdout [e1]: one',
      'stderr [e1]: err',
      'stdout [e1]: two',
      'stdout [e1]: last',
      'exit [e1]: code 3',
      'file created: a.txt',
      'process started [e2]: pid 7 sleep 1',
      'custom state: {"id":"x"}',
      'error: bad (validation_error)',
    ]);
  });
});
