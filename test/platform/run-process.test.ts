// Unit tests of the process driver's own logic (cap, decoding, timeout) with a scripted handle; the real thing
// is exercised end to end in test/gateway.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { StreamEvent } from '@faas/protocol';
import type { ProcessExit, ProcessHandle } from '../../src/runtimes/runtime.js';
import { runProcess } from '../../src/platform/run-process.js';

class ScriptedProcess extends EventEmitter implements ProcessHandle {
  readonly id = 1;
  readonly started = Promise.resolve(42);
  readonly exited: Promise<ProcessExit>;
  finish!: (exit: ProcessExit) => void;
  written: string[] = [];
  stdinClosed = false;
  signals: Array<{ sig: string | number; tree?: boolean }> = [];
  constructor(private readonly exitOnKill = true) {
    super();
    this.exited = new Promise((resolve) => (this.finish = resolve));
  }
  write(data: Buffer | string) {
    this.written.push(data.toString());
  }
  closeStdin() {
    this.stdinClosed = true;
  }
  signal(sig: string | number, opts?: { tree?: boolean }) {
    this.signals.push({ sig, tree: opts?.tree });
    if (this.exitOnKill && sig === 'SIGKILL') this.finish({ exitCode: 137, signal: 'SIGKILL', oomKilled: false });
  }
  resize() {}
}

describe('runProcess', () => {
  it('keeps output up to the cap and says what was cut', async () => {
    const p = new ScriptedProcess();
    const run = runProcess(p, { execId: 'x', outputCapBytes: 5 });
    p.emit('stdout', Buffer.from('abc'));
    p.emit('stdout', Buffer.from('defgh'));
    p.emit('stderr', Buffer.from('ok'));
    p.finish({ exitCode: 0, signal: null, oomKilled: false });
    const out = await run;
    expect(out).toMatchObject({ stdout: 'abcde', stdoutTruncated: true, stderr: 'ok', stderrTruncated: false, timedOut: false });
  });

  it('never splits a UTF-8 character across stream events', async () => {
    const p = new ScriptedProcess();
    const events: StreamEvent[] = [];
    const run = runProcess(p, { execId: 'x', outputCapBytes: 100, onEvent: (e) => events.push(e) });
    const euro = Buffer.from('€');
    p.emit('stdout', euro.subarray(0, 1));
    p.emit('stdout', euro.subarray(1));
    p.finish({ exitCode: 0, signal: null, oomKilled: false });
    await run;
    expect(events).toEqual([
      { type: 'stdout', data: '€', exec_id: 'x' },
      { type: 'exit', code: 0, exec_id: 'x', signal: null, timed_out: false, oom_killed: false },
    ]);
  });

  it('writes stdin then closes it, and leaves stdin alone when there is none', async () => {
    const p = new ScriptedProcess();
    const run = runProcess(p, { execId: 'x', outputCapBytes: 10, stdin: 'hi' });
    p.finish({ exitCode: 0, signal: null, oomKilled: false });
    await run;
    expect(p.written).toEqual(['hi']);
    expect(p.stdinClosed).toBe(true);
    const q = new ScriptedProcess();
    const run2 = runProcess(q, { execId: 'y', outputCapBytes: 10 });
    q.finish({ exitCode: 0, signal: null, oomKilled: false });
    await run2;
    expect(q.stdinClosed).toBe(false);
  });

  it('kills the whole tree at the timeout and reports it', async () => {
    const p = new ScriptedProcess();
    const out = await runProcess(p, { execId: 'x', outputCapBytes: 10, timeoutMs: 20 });
    expect(p.signals).toEqual([{ sig: 'SIGKILL', tree: true }]);
    expect(out).toMatchObject({ timedOut: true, exitCode: 137, signal: 'SIGKILL' });
  });

  it('gives up on a process that does not die after the kill', async () => {
    const p = new ScriptedProcess(false);
    await expect(runProcess(p, { execId: 'stuck', outputCapBytes: 10, timeoutMs: 10 })).rejects.toThrow(/stuck.*did not report an exit/);
  }, 10_000);
});
