/** Runs `faas serve` as a real child process (the compiled CLI), for tests of start, shutdown and crashes. */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../src/config.js';

export const FAAS_BIN = path.join(PACKAGE_ROOT, 'bin', 'faas.js');

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  firstLine: string;
  output: () => string;
}

/** Starts the gateway on a free port and resolves once it printed where it listens. */
export function startServe(args: string[], env: Record<string, string> = {}): Promise<ServeProcess> {
  // Run directly, as users run it: its first lines start Node with the gateway's V8 heap flag.
  const child = spawn(FAAS_BIN, ['serve', '--port', '0', ...args], {
    // Dependency caches (volumes that outlive the gateway) stay off unless a caller asks for them.
    env: { ...process.env, FAAS_DEPENDENCY_CACHES: 'off', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`faas serve printed no address within 20 s:\n${out}`)), 20_000);
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`faas serve exited with ${code}:\n${out}`));
    };
    child.once('exit', onExit);
    const onData = () => {
      const match = /listening on (http:\/\/\S+)/.exec(out);
      if (!match) return;
      clearTimeout(timer);
      child.off('exit', onExit);
      child.stdout!.off('data', onData);
      resolve({ child, url: match[1]!, firstLine: out.split('\n')[0]!, output: () => out });
    };
    child.stdout!.on('data', onData);
  });
}

export function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}
