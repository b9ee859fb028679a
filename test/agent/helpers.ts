import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { AgentClient, type AgentProcess } from '../../src/runtimes/agent/index.js';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const AGENT_BIN = path.join(REPO, 'agent/build/faas-agent');

export function buildAgent(): void {
  execFileSync('make', ['-s', '-C', path.join(REPO, 'agent')], { stdio: 'inherit' });
}

export interface RunningAgent {
  dir: string;
  socket: string;
  workspace: string;
  events: string;
  proc: ChildProcess;
  stderr: () => string;
  stop: () => Promise<void>;
}

export async function startAgent(): Promise<RunningAgent> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faas-agent-'));
  const socket = path.join(dir, 'run/agent.sock');
  const workspace = path.join(dir, 'workspace');
  const events = path.join(dir, 'run/events');
  const proc = spawn(AGENT_BIN, ['--socket', socket, '--workspace', workspace, '--events', events], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    dir,
    socket,
    workspace,
    events,
    proc,
    stderr: () => err,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null && proc.pid) {
        try {
          process.kill(proc.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function connect(a: RunningAgent): Promise<AgentClient> {
  return AgentClient.connect(a.socket, { timeoutMs: 5000 });
}

export interface Collected {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
  signal: string | null;
  oomKilled: boolean;
  order: string[];
}

export async function collect(p: AgentProcess): Promise<Collected> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const order: string[] = [];
  p.on('stdout', (b: Buffer) => {
    out.push(b);
    order.push('stdout');
  });
  p.on('stderr', (b: Buffer) => {
    err.push(b);
    order.push('stderr');
  });
  const e = await p.exited;
  order.push('exit');
  return { stdout: Buffer.concat(out), stderr: Buffer.concat(err), ...e, order };
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // a zombie still answers kill(0); look at its state
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}
