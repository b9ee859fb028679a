/**
 * Client for the in-sandbox agent (faas-agent) over its unix socket. See docs/agent-protocol.md.
 */
import { EventEmitter } from 'node:events';
import { promises as fsp } from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';

import {
  FrameDecoder,
  FrameType,
  MAX_CHUNK,
  ProtocolError,
  decodeExit,
  decodeFileEvent,
  decodePong,
  decodeProcessEvent,
  decodeStarted,
  encodeAttach,
  encodeList,
  encodePing,
  encodeResize,
  encodeSignal,
  encodeSpawn,
  encodeStdin,
  encodeStdinEof,
  encodeSubscribe,
  type FileEventKind,
  type Frame,
  type ProcessEventKind,
} from './protocol.js';

/** Linux signal numbers (the agent always runs on Linux, whatever the host platform). */
export const LINUX_SIGNALS: Readonly<Record<string, number>> = Object.freeze({
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGIOT: 6, SIGBUS: 7, SIGFPE: 8, SIGKILL: 9,
  SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15, SIGSTKFLT: 16, SIGCHLD: 17,
  SIGCONT: 18, SIGSTOP: 19, SIGTSTP: 20, SIGTTIN: 21, SIGTTOU: 22, SIGURG: 23, SIGXCPU: 24, SIGXFSZ: 25,
  SIGVTALRM: 26, SIGPROF: 27, SIGWINCH: 28, SIGIO: 29, SIGPOLL: 29, SIGPWR: 30, SIGSYS: 31,
});

const SIGNAL_NAMES = new Map<number, string>();
for (const [name, num] of Object.entries(LINUX_SIGNALS)) if (!SIGNAL_NAMES.has(num)) SIGNAL_NAMES.set(num, name);

/** 'SIGINT', 'INT', 'sigint' or a number (1..64) → signal number. Throws on an unknown name. */
export function signalNumber(sig: string | number): number {
  if (typeof sig === 'number') {
    if (!Number.isInteger(sig) || sig < 1 || sig > 64) throw new RangeError(`invalid signal number ${sig}`);
    return sig;
  }
  const up = sig.toUpperCase();
  const n = LINUX_SIGNALS[up.startsWith('SIG') ? up : `SIG${up}`];
  if (n === undefined) throw new RangeError(`unknown signal ${JSON.stringify(sig)}`);
  return n;
}

/** Signal number → name ('SIGKILL'); real-time signals are 'SIGRTMIN+k'; 0 → null. */
export function signalName(signo: number): string | null {
  if (signo <= 0) return null;
  const n = SIGNAL_NAMES.get(signo);
  if (n) return n;
  if (signo >= 34 && signo <= 64) return `SIGRTMIN+${signo - 34}`;
  return `SIG${signo}`;
}

export interface SpawnOptions {
  argv: string[];
  env?: Record<string, string>;
  /** Empty/absent = the workspace; relative paths are relative to the workspace. */
  cwd?: string;
  /** Run on a pseudo-terminal of this size (stderr is then merged into stdout). */
  pty?: { cols: number; rows: number };
  /** Give the process a stdin pipe (otherwise /dev/null; a PTY always accepts input). */
  stdin?: boolean;
  /** Exec id; chosen by the client when absent. Must not be in use on this agent. */
  id?: number;
}

export interface ProcessExit {
  exitCode: number;
  /** Signal name, e.g. 'SIGKILL', or null for a normal exit. */
  signal: string | null;
  oomKilled: boolean;
}

export interface ProcessInfo {
  pid: number;
  ppid: number;
  command: string;
  /** Present for processes the agent spawned itself. */
  execId?: number;
}

export interface FileEvent {
  path: string;
  event: FileEventKind;
  /** Old path, for 'renamed'. */
  from?: string;
  isDir: boolean;
}

export interface ProcessEvent {
  pid: number;
  command: string;
  event: ProcessEventKind;
  execId: number;
  /** For 'exited'. */
  exitCode?: number;
  signal?: string | null;
}

export interface ConnectOptions {
  /** How long to retry while the socket does not exist or refuses connections. Default 5000. */
  timeoutMs?: number;
  /** Stops retrying (the attempt rejects with the signal's reason). */
  signal?: AbortSignal;
}

type Pending<T> = { resolve: (v: T) => void; reject: (e: Error) => void };

/**
 * One process on the agent. Events: 'stdout' (Buffer), 'stderr' (Buffer), 'error_message' (string: the agent's
 * ERROR for this exec, e.g. `exec "nosuch": No such file or directory` — show it on stderr).
 * All 'stdout'/'stderr' events are emitted before `exited` resolves.
 */
export class AgentProcess extends EventEmitter {
  readonly started: Promise<number>;
  readonly exited: Promise<ProcessExit>;
  /** Last ERROR message the agent sent about this exec, if any. */
  errorMessage: string | undefined;
  pid: number | undefined;
  private startedP!: Pending<number>;
  private exitedP!: Pending<ProcessExit>;
  private done = false;
  private startSettled = false;

  /** @internal created by AgentClient.spawn/attach */
  constructor(
    readonly id: number,
    private readonly client: AgentClient,
  ) {
    super();
    this.started = new Promise<number>((resolve, reject) => (this.startedP = { resolve, reject }));
    this.exited = new Promise<ProcessExit>((resolve, reject) => (this.exitedP = { resolve, reject }));
    // Never let an unobserved rejection crash the host; callers still see it when they await.
    this.started.catch(() => undefined);
    this.exited.catch(() => undefined);
  }

  /** Queue stdin data (sent in chunks of at most 64 KiB). Ignored after exit. */
  write(data: Buffer | string): void {
    if (this.done) return;
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    for (let off = 0; off < buf.length; off += MAX_CHUNK) this.client._send(encodeStdin(this.id, buf.subarray(off, off + MAX_CHUNK)));
  }

  /** End of input: the agent closes the stdin pipe once everything queued was written. Ignored for a PTY. */
  closeStdin(): void {
    if (!this.done) this.client._send(encodeStdinEof(this.id));
  }

  /** Signal the process group (tree: also every descendant found in /proc). Throws on an unknown signal name. */
  signal(sig: string | number, opts?: { tree?: boolean }): void {
    const n = signalNumber(sig);
    if (!this.done) this.client._send(encodeSignal(this.id, n, opts?.tree ?? false));
  }

  resize(cols: number, rows: number): void {
    if (!this.done) this.client._send(encodeResize(this.id, cols, rows));
  }

  get finished(): boolean {
    return this.done;
  }

  /** @internal */
  _frame(f: Frame): void {
    switch (f.type) {
      case FrameType.STARTED:
        this.pid = decodeStarted(f);
        this.startSettled = true;
        this.startedP.resolve(this.pid);
        break;
      case FrameType.STDOUT:
        this.emit('stdout', f.payload);
        break;
      case FrameType.STDERR:
        this.emit('stderr', f.payload);
        break;
      case FrameType.ERROR:
        this.errorMessage = f.payload.toString('utf8');
        this.emit('error_message', this.errorMessage);
        break;
      case FrameType.EXIT: {
        const e = decodeExit(f);
        this.done = true;
        if (e.code === -1) {
          // refused (duplicate id, unknown ATTACH) or taken over by another connection: nothing more will come
          const err = new Error(this.errorMessage ?? `exec ${this.id} was refused by the agent`);
          if (!this.startSettled) {
            this.startSettled = true;
            this.startedP.reject(err);
          }
          this.exitedP.reject(err);
          break;
        }
        if (!this.startSettled) {
          this.startSettled = true;
          this.startedP.reject(new Error(this.errorMessage ?? `exec ${this.id} failed to start`));
        }
        this.exitedP.resolve({ exitCode: e.code, signal: signalName(e.signal), oomKilled: e.oomKilled });
        break;
      }
      default:
        break;
    }
  }

  /** @internal */
  _lost(err: Error): void {
    if (this.done) return;
    this.done = true;
    if (!this.startSettled) {
      this.startSettled = true;
      this.startedP.reject(err);
    }
    this.exitedP.reject(err);
  }
}

/**
 * A connection to one agent. Events: 'file_event' (FileEvent), 'process_event' (ProcessEvent), 'custom' (string,
 * the raw line), 'agent_error' (string: ERROR frames not tied to a live exec or request, e.g. a dropped custom
 * event line), 'close' (Error | undefined: why, when it was not close()).
 */
export class AgentClient extends EventEmitter {
  private readonly decoder = new FrameDecoder();
  private readonly procs = new Map<number, AgentProcess>();
  private readonly pings = new Map<number, Pending<number> & { start: number }>();
  private readonly lists = new Map<number, Pending<ProcessInfo[]>>();
  /**
   * Exec ids live as long as the agent, not the connection: a reconnecting gateway (after a restart) must not
   * reuse the id of a process that is still running, so each connection starts at a random point.
   */
  private nextId = 1 + Math.floor(Math.random() * 0x7fffffff);
  private closed = false;
  private closeReason: Error | undefined;

  private constructor(
    private readonly socket: net.Socket,
    readonly socketPath: string,
  ) {
    super();
    socket.setNoDelay?.(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (e: Error) => {
      this.closeReason ??= new Error(`agent connection to ${this.socketPath} was lost: ${e.message}`);
    });
    socket.on('close', () => this.onClose());
  }

  static async connect(socketPath: string, opts?: ConnectOptions): Promise<AgentClient> {
    const timeoutMs = opts?.timeoutMs ?? 5000;
    const deadline = Date.now() + timeoutMs;
    let delay = 10;
    for (;;) {
      opts?.signal?.throwIfAborted();
      let retryable: Error;
      try {
        const st = await fsp.lstat(socketPath);
        if (!st.isSocket()) throw new Error(`refusing to connect to ${socketPath}: not a unix socket (a symlink or other file is there)`);
        const sock = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.createConnection({ path: socketPath });
          s.once('connect', () => {
            s.removeListener('error', reject);
            resolve(s);
          });
          s.once('error', reject);
        });
        return new AgentClient(sock, socketPath);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ECONNREFUSED') throw e;
        retryable = e as Error;
      }
      if (Date.now() + delay > deadline) {
        throw new Error(`cannot connect to the agent at ${socketPath} within ${timeoutMs} ms: ${retryable.message}`);
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 100);
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private allocId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
      if (!this.procs.has(id) && !this.pings.has(id) && !this.lists.has(id)) return id;
    }
  }

  private deadError(): Error {
    return new Error(`agent connection to ${this.socketPath} was lost`);
  }

  spawn(opts: SpawnOptions): AgentProcess {
    const id = opts.id ?? this.allocId();
    if (this.procs.has(id)) throw new Error(`exec id ${id} is already in use on this connection`);
    const frame = encodeSpawn(id, opts);
    const p = new AgentProcess(id, this);
    if (this.closed) {
      p._lost(this.closeReason ?? this.deadError());
      return p;
    }
    this.procs.set(id, p);
    this.socket.write(frame);
    return p;
  }

  /** Take over output and exit of an exec started by another (possibly closed) connection. */
  attach(id: number): AgentProcess {
    if (this.procs.has(id)) throw new Error(`exec id ${id} is already in use on this connection`);
    const p = new AgentProcess(id, this);
    if (this.closed) {
      p._lost(this.closeReason ?? this.deadError());
      return p;
    }
    this.procs.set(id, p);
    this.socket.write(encodeAttach(id));
    return p;
  }

  /** Round trip in milliseconds. */
  ping(): Promise<number> {
    if (this.closed) return Promise.reject(this.closeReason ?? this.deadError());
    const id = this.allocId();
    return new Promise<number>((resolve, reject) => {
      this.pings.set(id, { resolve, reject, start: performance.now() });
      this.socket.write(encodePing(id, BigInt(id)));
    });
  }

  listProcesses(): Promise<ProcessInfo[]> {
    if (this.closed) return Promise.reject(this.closeReason ?? this.deadError());
    const id = this.allocId();
    return new Promise<ProcessInfo[]>((resolve, reject) => {
      this.lists.set(id, { resolve, reject });
      this.socket.write(encodeList(id));
    });
  }

  /** Receive 'file_event', 'process_event' and 'custom' events from now on. */
  subscribe(): void {
    if (!this.closed) this.socket.write(encodeSubscribe());
  }

  close(): void {
    if (this.closed) return;
    this.socket.destroy();
  }

  /** @internal */
  _send(frame: Buffer): void {
    if (!this.closed) this.socket.write(frame);
  }

  private onData(d: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(d);
    } catch (e) {
      this.closeReason = new Error(`agent connection to ${this.socketPath} was lost: ${(e as Error).message}`);
      this.socket.destroy();
      return;
    }
    for (const f of frames) {
      try {
        this.onFrame(f);
      } catch (e) {
        if (e instanceof ProtocolError) {
          this.closeReason = new Error(`agent connection to ${this.socketPath} was lost: ${e.message}`);
          this.socket.destroy();
          return;
        }
        throw e;
      }
    }
  }

  private onFrame(f: Frame): void {
    switch (f.type) {
      case FrameType.STARTED:
      case FrameType.STDOUT:
      case FrameType.STDERR: {
        this.procs.get(f.id)?._frame(f);
        return;
      }
      case FrameType.EXIT: {
        const p = this.procs.get(f.id);
        if (p) {
          this.procs.delete(f.id);
          p._frame(f);
        }
        return;
      }
      case FrameType.ERROR: {
        const msg = f.payload.toString('utf8');
        const p = this.procs.get(f.id);
        if (p && f.id !== 0) {
          p._frame(f);
          return;
        }
        const ping = this.pings.get(f.id);
        const list = this.lists.get(f.id);
        if (ping || list) {
          this.pings.delete(f.id);
          this.lists.delete(f.id);
          (ping ?? list)!.reject(new Error(`agent error: ${msg}`));
          return;
        }
        this.emit('agent_error', msg);
        return;
      }
      case FrameType.PONG: {
        const ping = this.pings.get(f.id);
        decodePong(f);
        if (ping) {
          this.pings.delete(f.id);
          ping.resolve(performance.now() - ping.start);
        }
        return;
      }
      case FrameType.PROCESS_LIST: {
        const list = this.lists.get(f.id);
        if (!list) return;
        this.lists.delete(f.id);
        try {
          const raw = JSON.parse(f.payload.toString('utf8')) as unknown;
          if (!Array.isArray(raw)) throw new Error('not an array');
          list.resolve(
            raw.map((r: { pid: number; ppid: number; command: string; execId?: number }) => {
              const info: ProcessInfo = { pid: r.pid, ppid: r.ppid, command: r.command };
              if (typeof r.execId === 'number') info.execId = r.execId;
              return info;
            }),
          );
        } catch (e) {
          list.reject(new Error(`agent sent an invalid process list: ${(e as Error).message}`));
        }
        return;
      }
      case FrameType.PROCESS_EVENT: {
        const e = decodeProcessEvent(f);
        const ev: ProcessEvent = { pid: e.pid, command: e.command, event: e.kind, execId: f.id };
        if (e.kind === 'exited') {
          ev.exitCode = e.code;
          ev.signal = signalName(e.signal);
        }
        this.emit('process_event', ev);
        return;
      }
      case FrameType.FILE_EVENT: {
        const e = decodeFileEvent(f);
        const ev: FileEvent = { path: e.path, event: e.kind, isDir: e.isDir };
        if (e.kind === 'renamed') ev.from = e.from;
        this.emit('file_event', ev);
        return;
      }
      case FrameType.CUSTOM:
        this.emit('custom', f.payload.toString('utf8'));
        return;
      default:
        // a host->agent type coming back: treat as a protocol violation
        throw new ProtocolError(`unexpected frame type 0x${f.type.toString(16)} from the agent`, f.type, f.id);
    }
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    const err = this.closeReason ?? this.deadError();
    for (const p of this.procs.values()) p._lost(err);
    this.procs.clear();
    for (const p of this.pings.values()) p.reject(err);
    this.pings.clear();
    for (const l of this.lists.values()) l.reject(err);
    this.lists.clear();
    this.emit('close', this.closeReason);
  }
}
