/**
 * Drives one process to its end: feeds stdin, enforces the timeout on the whole process tree, keeps its output up
 * to a cap, and publishes its events as they happen. Both REST executions and WebSocket execs go through here.
 */
import { StringDecoder } from 'node:string_decoder';
import type { StreamEvent } from '@faas/protocol';
import type { ProcessExit, ProcessHandle } from '../runtimes/runtime.js';

export interface RunProcessOptions {
  execId: string;
  stdin?: string | undefined;
  /** Keep stdin open for later writes (WebSocket `stdin` commands) instead of closing it after `stdin`. Without
   * `stdin` and without this, the process was started reading /dev/null. */
  keepStdinOpen?: boolean;
  timeoutMs?: number | undefined;
  /** Bytes kept per stream for the answer; 0 keeps nothing (pure streaming). */
  outputCapBytes: number;
  /** Receives stdout/stderr/exit events as they happen. */
  onEvent?: ((event: StreamEvent) => void) | undefined;
}

export interface ProcessOutcome extends ProcessExit {
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  timedOut: boolean;
  durationMs: number;
}

/** If the agent does not report an exit this long after a timeout kill, something is wedged: give up waiting. */
const KILL_GRACE_MS = 5_000;

class CappedBuffer {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  constructor(private readonly cap: number) {}

  push(chunk: Buffer): void {
    const room = this.cap - this.size;
    if (room <= 0) {
      if (chunk.length > 0) this.truncated = true;
      return;
    }
    const kept = chunk.length <= room ? chunk : chunk.subarray(0, room);
    if (kept.length < chunk.length) this.truncated = true;
    this.chunks.push(kept);
    this.size += kept.length;
  }

  text(): string {
    return Buffer.concat(this.chunks, this.size).toString('utf8');
  }
}

export async function runProcess(handle: ProcessHandle, opts: RunProcessOptions): Promise<ProcessOutcome> {
  const started = performance.now();
  const out = new CappedBuffer(opts.outputCapBytes);
  const err = new CappedBuffer(opts.outputCapBytes);
  const emit = opts.onEvent;
  const decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  const relay = (stream: 'stdout' | 'stderr', buffer: CappedBuffer) => (chunk: Buffer) => {
    buffer.push(chunk);
    if (emit) {
      const data = decoders[stream].write(chunk);
      if (data) emit({ type: stream, data, exec_id: opts.execId });
    }
  };
  handle.on('stdout', relay('stdout', out));
  handle.on('stderr', relay('stderr', err));
  // Why a program could not start reads best where a shell would have put it: on stderr.
  handle.on('error_message', (message: string) => relay('stderr', err)(Buffer.from(`${message}\n`)));

  if (opts.stdin !== undefined) {
    if (opts.stdin !== '') handle.write(opts.stdin);
    if (!opts.keepStdinOpen) handle.closeStdin();
  }

  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  let graceTimer: NodeJS.Timeout | undefined;
  const watchdog = new Promise<never>((_, reject) => {
    if (opts.timeoutMs === undefined) return;
    timer = setTimeout(() => {
      timedOut = true;
      handle.signal('SIGKILL', { tree: true });
      graceTimer = setTimeout(
        () => reject(new Error(`exec ${opts.execId} was killed after its ${opts.timeoutMs} ms timeout but did not report an exit within ${KILL_GRACE_MS} ms`)),
        KILL_GRACE_MS,
      );
    }, opts.timeoutMs);
  });
  let exit: ProcessExit;
  try {
    exit = await Promise.race([handle.exited, watchdog]);
  } finally {
    clearTimeout(timer);
    clearTimeout(graceTimer);
  }
  if (emit) {
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = decoders[stream].end();
      if (rest) emit({ type: stream, data: rest, exec_id: opts.execId });
    }
    emit({ type: 'exit', code: exit.exitCode, exec_id: opts.execId, signal: exit.signal, timed_out: timedOut, oom_killed: exit.oomKilled });
  }
  return {
    ...exit,
    stdout: out.text(),
    stderr: err.text(),
    stdoutTruncated: out.truncated,
    stderrTruncated: err.truncated,
    timedOut,
    durationMs: Math.round((performance.now() - started) * 100) / 100,
  };
}
