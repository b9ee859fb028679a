/**
 * Persistent sandboxes (the specification's "containers"): their lifecycle, the processes run in them, and the
 * fan-out of everything that happens inside to any number of watchers (WebSocket clients).
 */
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  type Container,
  type ContainerExecRequest,
  type CreateContainerRequest,
  DEFAULT_IMAGE,
  DEFAULT_WORKING_DIR,
  type FileWritten,
  LIMITS,
  fileModeText,
  type SandboxState,
  type StreamEvent,
} from '@faas/protocol';
import { FaasError, errorMessage, notFound } from '../errors.js';
import type { ProcessHandle, Runtime, SandboxFileEvent, SandboxPathStat, SandboxProcessEvent, VolumeMount } from '../runtimes/runtime.js';
import { resolveImageFor } from './image-access.js';
import { newId, nowIso } from './ids.js';
import type { PlatformMetrics } from './metrics.js';
import type { QuietTime } from './quiet-time.js';
import { QuotaGuard } from './quotas.js';
import { type InputFiles, READ_ONLY_FILES, prepareInputFiles, writeInputFiles } from './input-files.js';
import { type ProcessOutcome, runProcess } from './run-process.js';
import type { PlatformStore, SandboxRecord } from './store.js';
import { tarParts } from './tar-files.js';

export type VolumesFor = (tenant: string) => Promise<VolumeMount[]>;

export interface ExecSpec {
  argv: string[];
  env?: Record<string, string> | undefined;
  workingDir?: string | undefined;
  stdin?: string | undefined;
  /** Written before the process starts (relative paths from its working directory). */
  files?: InputFiles | undefined;
  timeoutMs?: number | undefined;
  pty?: { cols: number; rows: number } | undefined;
  /** Keep stdin open for `writeStdin` (WebSocket execs). */
  interactive?: boolean;
  execId?: string | undefined;
}

export interface RunningExec {
  execId: string;
  handle: ProcessHandle;
  /** Settles when the process ended and its exit event was published. */
  done: Promise<ProcessOutcome>;
}

type Listener = (event: StreamEvent) => void;

/** A regular file being read out of a sandbox: `content` streams its `size` bytes. */
export interface SandboxFile {
  /** The absolute path read. */
  path: string;
  size: number;
  /** Permission bits (setuid, setgid and sticky included). */
  mode: number;
  content: Readable;
}

interface LiveState {
  hub: EventEmitter;
  execs: Map<string, { handle: ProcessHandle; agentId: number; command: string; startedAt: number }>;
  byAgentId: Map<number, string>;
  watchers: number;
  /** The sandbox is being stopped or deleted on purpose: an agent going away is expected. */
  stopping: boolean;
  /** Sequence number of the last event, and the recent events kept for replay (`since`). */
  seq: number;
  history: StreamEvent[];
  historyBytes: number;
}

/** Recent events kept per sandbox for clients that reconnect with `since`: at most this many, and this many bytes. */
export const REPLAY_MAX_EVENTS = 10_000;
export const REPLAY_MAX_BYTES = 8 * 1024 * 1024;

function eventBytes(event: StreamEvent): number {
  return 64 + ('data' in event && typeof event.data === 'string' ? event.data.length : 0);
}

const ACTIVITY_WRITE_INTERVAL_MS = 1000;
/** Lifecycle events shown with a sandbox (the most recent ones). */
const LIFECYCLE_SHOWN = 50;
/** Bytes of the kept-alive command's output kept for its `command_exited` lifecycle entry. */
const MAIN_STDERR_KEPT = 1024;

export function shellArgv(command: string): string[] {
  return ['/bin/sh', '-c', command];
}

export class SandboxService {
  private readonly live = new Map<string, LiveState>();
  /** Operations in flight per sandbox, so stop/resume/delete of one sandbox never interleave. */
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly lastActive = new Map<string, number>();
  private readonly lastWritten = new Map<string, number>();
  /** File reads and writes under way per sandbox: activity, like a running exec. */
  private readonly transfers = new Map<string, number>();
  private closed = false;

  constructor(
    private readonly runtime: Runtime,
    private readonly store: PlatformStore,
    private readonly metrics: PlatformMetrics,
    /** Told of every exec's start and end, so background work waits for a pause (see QuietTime). */
    private readonly quiet: QuietTime,
    /** Volumes every sandbox of a tenant gets (its dependency caches). */
    private readonly volumesFor: VolumesFor = async () => [],
    private readonly quotas: QuotaGuard = new QuotaGuard(() => ({}), () => 0),
  ) {}

  private state(id: string): LiveState {
    let s = this.live.get(id);
    if (!s) {
      s = { hub: new EventEmitter(), execs: new Map(), byAgentId: new Map(), watchers: 0, stopping: false, seq: 0, history: [], historyBytes: 0 };
      s.hub.setMaxListeners(0);
      this.live.set(id, s);
      this.wireRuntimeEvents(id, s);
    }
    return s;
  }

  private serialize<T>(id: string, op: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve();
    const next = previous.then(op, op);
    const settled = next.catch(() => undefined);
    this.locks.set(id, settled);
    void settled.then(() => {
      if (this.locks.get(id) === settled) this.locks.delete(id);
    });
    return next;
  }

  /**
   * Records a lifecycle event of the sandbox (created, stopped and why, resumed, exec killed by its timeout or the
   * OOM killer, lost, deleted) and tells its watchers, as a `custom` event named `lifecycle`.
   */
  private lifecycle(id: string, event: string, detail: Record<string, unknown> = {}): void {
    if (!this.closed) this.store.recordLifecycle(id, event, detail, nowIso());
    this.publish(id, { type: 'custom', name: 'lifecycle', data: { event, ...detail } });
  }

  /** Numbers the event, keeps it for replay, and hands it to every watcher. */
  private publish(id: string, event: StreamEvent): void {
    const s = this.live.get(id);
    if (!s) return;
    const numbered = { ...event, seq: ++s.seq } as StreamEvent;
    s.history.push(numbered);
    s.historyBytes += eventBytes(numbered);
    while (s.history.length > REPLAY_MAX_EVENTS || s.historyBytes > REPLAY_MAX_BYTES) {
      s.historyBytes -= eventBytes(s.history.shift()!);
    }
    s.hub.emit('event', numbered);
  }

  /** Turns what the agent reports into protocol events for the sandbox's watchers. */
  private wireRuntimeEvents(id: string, s: LiveState): void {
    const events = this.runtime.events(id);
    events.on('file_event', (e: SandboxFileEvent) => {
      if (e.event === 'overflow') {
        this.publish(id, { type: 'error', code: 'file_events_lost', message: `sandbox ${id} changed files faster than they could be watched; some file events were lost` });
        return;
      }
      this.publish(id, { type: 'file_event', path: e.path, event: e.event, ...(e.from !== undefined ? { from: e.from } : {}) });
    });
    events.on('process_event', (e: SandboxProcessEvent) => {
      const execId = e.execId !== undefined ? s.byAgentId.get(e.execId) : undefined;
      this.publish(id, { type: 'process_event', pid: e.pid, command: e.command, event: e.event, ...(execId ? { exec_id: execId } : {}) });
    });
    events.on('custom', (line: string) => this.publish(id, parseCustomEvent(line)));
    events.on('down', () => {
      if (s.stopping) return;
      void this.noticeUnexpectedStop(id);
    });
  }

  /** The agent vanished without being asked to: record why the sandbox is no longer running. */
  private async noticeUnexpectedStop(id: string): Promise<void> {
    const record = this.store.getSandbox(id);
    if (!record || record.status !== 'running') return;
    const info = await this.runtime.inspect(id).catch(() => null);
    if (info?.running) return;
    const reason = info?.oomKilled ? 'oom' : info ? 'engine' : 'vanished';
    this.store.setSandboxStatus(id, info ? 'stopped' : 'lost', reason);
    this.lifecycle(id, info ? 'stopped' : 'lost', { reason });
  }

  /** `restore.apply` fills the new sandbox (from a snapshot) before it is recorded; on failure nothing stays. */
  async create(tenant: string, ask: CreateContainerRequest, restore?: { apply: (id: string) => Promise<void> }): Promise<Container> {
    const req = this.quotas.limits(tenant, ask);
    this.quotas.admitSandbox(tenant);
    const image = req.image ?? DEFAULT_IMAGE;
    await resolveImageFor(this.runtime, tenant, image);
    const volumes = await this.volumesFor(tenant);
    const id = newId('sb');
    const now = nowIso();
    const record: SandboxRecord = {
      id,
      tenantId: tenant,
      status: 'running',
      image,
      command: req.argv ?? (req.command !== undefined ? shellArgv(req.command) : null),
      env: req.env ?? {},
      workingDir: req.working_dir ?? DEFAULT_WORKING_DIR,
      limits: {
        memory_mb: req.memory_mb ?? null,
        cpu_cores: req.cpu_cores ?? null,
        pids_limit: req.pids_limit ?? null,
        network: req.network ?? 'none',
        ...(req.read_only ? { read_only: true } : {}),
      },
      idleTimeoutS: req.idle_timeout_s ?? 0,
      createdAt: now,
      lastActiveAt: now,
      stoppedReason: null,
    };
    this.state(id);
    try {
      await this.runtime.create({
        id,
        image,
        env: record.env,
        workingDir: record.workingDir,
        limits: {
          memoryMb: req.memory_mb,
          cpuCores: req.cpu_cores,
          pidsLimit: req.pids_limit,
          network: record.limits.network,
          readOnly: req.read_only,
        },
        labels: { 'faas.kind': 'persistent', 'faas.tenant': tenant },
        volumes,
      });
      if (restore) {
        try {
          await restore.apply(id);
        } catch (err) {
          await this.runtime.remove(id).catch(() => undefined);
          throw err;
        }
      }
    } catch (err) {
      this.live.delete(id);
      throw err;
    }
    // Recorded only once it exists: a crash before this leaves an unrecorded container, which reconcile removes.
    this.store.insertSandbox(record);
    this.lifecycle(id, 'created', { image });
    this.refreshGauge();
    await this.startMainCommand(record);
    return toContainer(record);
  }

  /** The command a sandbox keeps running, started on create and again on every resume. */
  private async startMainCommand(record: SandboxRecord): Promise<void> {
    if (!record.command) return;
    // The start of its stderr is kept for the lifecycle entry that tells when it ends (why it could not start).
    await this.startExec(record.id, { argv: record.command, execId: 'main' }, undefined, MAIN_STDERR_KEPT);
  }

  /** The sandbox as its tenant sees it; another tenant's sandbox is "not found", never "forbidden". */
  get(tenant: string, id: string): Container {
    const record = this.record(id);
    if (record.tenantId !== tenant) throw notFound('sandbox', id);
    return { ...toContainer(record), lifecycle: this.store.lifecycleOf(id, LIFECYCLE_SHOWN) };
  }

  /** Checks the sandbox exists and belongs to the tenant (404 otherwise), cheaply: for every call on a sandbox. */
  assertOwner(tenant: string, id: string): void {
    if (this.store.sandboxTenant(id) !== tenant) throw notFound('sandbox', id);
  }

  private record(id: string): SandboxRecord {
    const record = this.store.getSandbox(id);
    if (!record) throw notFound('sandbox', id);
    return this.withActivity(record);
  }

  private records(): SandboxRecord[] {
    return this.store.listSandboxes().map((r) => this.withActivity(r));
  }

  list(tenant: string): Container[] {
    return this.records()
      .filter((r) => r.tenantId === tenant)
      .map(toContainer);
  }

  /** Sandboxes of a tenant that hold resources now (for quotas). */
  countRunning(tenant: string): number {
    return this.records().filter((r) => r.tenantId === tenant && r.status === 'running').length;
  }

  private requireRunning(id: string): SandboxRecord {
    const record = this.record(id);
    if (record.status !== 'running') {
      throw new FaasError('conflict', `sandbox ${id} is ${record.status}${record.stoppedReason ? ` (${record.stoppedReason})` : ''}; resume it first`);
    }
    return record;
  }

  /**
   * Records activity. The database is written at most once a second per sandbox (an exec touches twice and
   * must stay cheap); readers merge the newer in-memory time back in.
   */
  touch(id: string): void {
    if (this.closed) return;
    this.quiet.activity();
    const now = Date.now();
    this.lastActive.set(id, now);
    if (now - (this.lastWritten.get(id) ?? 0) < ACTIVITY_WRITE_INTERVAL_MS) return;
    this.lastWritten.set(id, now);
    this.store.touchSandbox(id, new Date(now).toISOString());
  }

  private withActivity(r: SandboxRecord): SandboxRecord {
    const recent = this.lastActive.get(r.id);
    return recent !== undefined && recent > Date.parse(r.lastActiveAt) ? { ...r, lastActiveAt: new Date(recent).toISOString() } : r;
  }

  /** Starts a process and publishes its output and exit to the sandbox's watchers. */
  async startExec(id: string, spec: ExecSpec, onEvent?: Listener, outputCapBytes = 0): Promise<RunningExec> {
    const record = this.requireRunning(id);
    this.quotas.admitExecution(record.tenantId);
    const s = this.state(id);
    const execId = spec.execId ?? newId('ex');
    if (s.execs.has(execId)) throw new FaasError('conflict', `exec id "${execId}" is already running in sandbox ${id}; pick another`, 'exec_id');
    if (spec.files) {
      const { archive, paths } = prepareInputFiles(spec.files, spec.workingDir ?? record.workingDir);
      if (record.limits.read_only) throw new FaasError('conflict', `sandbox ${id}: ${READ_ONLY_FILES}`, 'files');
      await this.refuseNonFiles(id, paths, 'files.');
      await writeInputFiles(this.runtime, id, archive);
    }
    const handle = await this.runtime.exec(id, {
      argv: spec.argv,
      env: spec.env,
      cwd: spec.workingDir ?? record.workingDir,
      pty: spec.pty,
      stdin: spec.interactive === true || spec.stdin !== undefined,
    });
    const command = spec.argv.join(' ');
    s.execs.set(execId, { handle, agentId: handle.id, command, startedAt: Date.now() });
    s.byAgentId.set(handle.id, execId);
    this.touch(id);
    const publish = (event: StreamEvent) => {
      this.publish(id, event);
      onEvent?.(event);
    };
    const done = runProcess(handle, {
      execId,
      stdin: spec.stdin,
      keepStdinOpen: spec.interactive === true,
      timeoutMs: spec.timeoutMs,
      outputCapBytes,
      onEvent: publish,
    })
      .then((outcome) => {
        if (outcome.timedOut) this.lifecycle(id, 'exec_timed_out', { exec_id: execId, timeout_ms: spec.timeoutMs });
        else if (outcome.oomKilled) this.lifecycle(id, 'exec_oom_killed', { exec_id: execId });
        // The kept-alive command ended on its own (not by a stop or delete): say so, or the sandbox looks fine.
        if (execId === 'main' && !s.stopping && this.store.getSandbox(id)?.status === 'running') {
          const stderr = outcome.stderr.slice(0, MAIN_STDERR_KEPT);
          this.lifecycle(id, 'command_exited', { exit_code: outcome.exitCode, signal: outcome.signal, ...(stderr ? { stderr } : {}) });
        }
        return outcome;
      })
      .catch((err: unknown) => {
        const current = this.store.getSandbox(id);
        const why = current && current.status !== 'running' ? `sandbox ${id} was ${current.status === 'lost' ? 'lost' : 'stopped'} while exec ${execId} ran` : errorMessage(err);
        publish({ type: 'error', message: why, exec_id: execId });
        throw new FaasError('conflict', why);
      })
      .finally(() => {
        s.execs.delete(execId);
        s.byAgentId.delete(handle.id);
        this.touch(id);
      });
    // Callers that only stream (WebSocket) may never await `done`; its failure is already published.
    done.catch(() => undefined);
    return { execId, handle, done };
  }

  /** Runs a command to completion (REST exec). */
  async exec(id: string, req: ContainerExecRequest, onEvent?: Listener, execId?: string): Promise<ProcessOutcome & { execId: string }> {
    const running = await this.startExec(
      id,
      {
        execId,
        argv: req.argv ?? shellArgv(req.command!),
        env: req.env,
        workingDir: req.working_dir,
        stdin: req.stdin,
        files: req.files,
        timeoutMs: req.timeout_ms ?? LIMITS.defaultTimeoutMs,
      },
      onEvent,
      LIMITS.outputCapBytes,
    );
    return { ...(await running.done), execId: running.execId };
  }

  /**
   * Streams a regular file out of a sandbox, running or stopped (`asked`: absolute, or relative to its working
   * directory). Anything else there is an error naming what it is.
   */
  async readFile(tenant: string, id: string, asked: string): Promise<SandboxFile> {
    this.assertOwner(tenant, id);
    const record = this.record(id);
    if (record.status === 'lost') throw new FaasError('conflict', `sandbox ${id} is lost (its container is gone from the engine), and its files with it; delete it`);
    const target = this.filePath(record, asked);
    if (record.limits.read_only && this.onTmpfs(record, target)) {
      throw new FaasError(
        'conflict',
        `${target} is on a tmpfs of read-only sandbox ${id} (its /tmp and working directory), which the engine's archive API cannot see; read it with an exec of cat`,
      );
    }
    const done = this.transferStarted(id);
    try {
      const read = await this.runtime.readFile(id, target);
      if (read.type !== 'file') throw this.notAFile(id, target, read, 'read');
      read.content.once('close', done);
      return { path: target, size: read.size, mode: read.mode, content: read.content };
    } catch (err) {
      done();
      throw err;
    }
  }

  /**
   * Writes (creates or replaces) one regular file in a running sandbox, making its parent folders (owned by root,
   * like the file). A directory, symlink or other special file at the path is left alone (409).
   */
  async writeFile(tenant: string, id: string, asked: string, data: Buffer, mode = 0o644): Promise<{ created: boolean; file: FileWritten }> {
    this.assertOwner(tenant, id);
    const record = this.requireRunning(id);
    const target = this.filePath(record, asked);
    if (record.limits.read_only) {
      throw new FaasError(
        'conflict',
        `sandbox ${id} has a read-only root filesystem, and its writable folders (/tmp and its working directory) are tmpfs mounts the engine's archive API cannot reach; write files there with an exec`,
      );
    }
    let archive: Buffer[];
    try {
      archive = tarParts([{ name: target.slice(1), data, mode }]);
    } catch (err) {
      if (err instanceof FaasError) throw new FaasError(err.code, err.message, 'path');
      throw err;
    }
    const done = this.transferStarted(id);
    try {
      const [there] = await this.refuseNonFiles(id, [target]);
      await this.runtime.writeFiles(id, Readable.from(archive));
      return { created: there!.type !== 'file', file: { path: target, size: data.length, mode: fileModeText(mode) } };
    } finally {
      done();
    }
  }

  /** The absolute path a files call means: relative paths are taken from the sandbox's working directory. */
  private filePath(record: SandboxRecord, asked: string): string {
    const target = path.posix.resolve(record.workingDir, asked);
    if (target === '/') throw new FaasError('validation_error', `path "${asked}" names the root folder, not a file`, 'path');
    return target;
  }

  /** A read-only sandbox's /tmp and working directory are tmpfs mounts: the engine's archives do not see into them. */
  private onTmpfs(record: SandboxRecord, target: string): boolean {
    return ['/tmp', record.workingDir].some((mount) => target === mount || target.startsWith(mount === '/' ? '/' : `${mount}/`));
  }

  /**
   * Refuses (409, naming the path) to write over a directory, symlink or special file: the engine would replace a
   * directory with the file, contents and all. Looks at up to 8 paths at a time; returns what is at each. With
   * `fieldPrefix`, the error names the field `<fieldPrefix><path>`.
   */
  private async refuseNonFiles(id: string, targets: string[], fieldPrefix?: string): Promise<SandboxPathStat[]> {
    const found: SandboxPathStat[] = new Array(targets.length);
    let next = 0;
    const check = async () => {
      while (next < targets.length) {
        const i = next++;
        const there = await this.runtime.statPath(id, targets[i]!);
        if (there.type === 'directory' || there.type === 'symlink' || there.type === 'other') {
          const err = this.notAFile(id, targets[i]!, there, 'write');
          throw fieldPrefix === undefined ? err : new FaasError(err.code, err.message, `${fieldPrefix}${targets[i]}`);
        }
        found[i] = there;
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, targets.length) }, check));
    return found;
  }

  private notAFile(id: string, target: string, there: Exclude<SandboxPathStat, { type: 'file' }>, doing: 'read' | 'write'): FaasError {
    const where = `${target} in sandbox ${id}`;
    switch (there.type) {
      case 'missing':
        return new FaasError('not_found', `no file at ${target} in sandbox ${id}${there.reason ? ` (${there.reason})` : ''}`);
      case 'directory':
        return new FaasError('conflict', doing === 'read' ? `${where} is a directory; list it with an exec of ls` : `${where} is a directory; name a file inside it`);
      case 'symlink': {
        const resolved = path.posix.resolve(path.posix.dirname(target), there.target);
        const shown = resolved === there.target ? there.target : `${there.target} (${resolved})`;
        return new FaasError('conflict', `${where} is a symbolic link to ${shown}; ${doing} ${resolved} instead`);
      }
      case 'other':
        return new FaasError('conflict', `${where} is a ${there.kind}, not a regular file`);
      case 'unknown':
        return new FaasError('conflict', `the engine could not tell what is at ${where}`);
    }
  }

  /** Counts a file transfer as activity while it lasts; returns the function that ends it. */
  private transferStarted(id: string): () => void {
    this.transfers.set(id, (this.transfers.get(id) ?? 0) + 1);
    this.touch(id);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const left = (this.transfers.get(id) ?? 1) - 1;
      if (left > 0) this.transfers.set(id, left);
      else this.transfers.delete(id);
      // A read cut by the sandbox's removal ends after it: nothing to record then.
      if (this.store.sandboxTenant(id) !== null) this.touch(id);
    };
  }

  private findExec(id: string, execId: string | undefined) {
    const s = this.live.get(id);
    if (execId !== undefined) {
      const exec = s?.execs.get(execId);
      if (!exec) throw new FaasError('not_found', `no running exec "${execId}" in sandbox ${id}`, 'exec_id');
      return exec;
    }
    if (!s || s.execs.size === 0) throw new FaasError('conflict', `nothing is running in sandbox ${id}; send an exec first`);
    // Default to the most recently started exec, the one a user typing into a terminal means.
    return [...s.execs.values()].reduce((a, b) => (b.startedAt >= a.startedAt ? b : a));
  }

  writeStdin(id: string, execId: string | undefined, data: string, eof: boolean): void {
    const exec = this.findExec(id, execId);
    if (data) exec.handle.write(data);
    if (eof) exec.handle.closeStdin();
    this.touch(id);
  }

  signal(id: string, execId: string | undefined, signal: string): void {
    const exec = this.findExec(id, execId);
    try {
      exec.handle.signal(signal);
    } catch (err) {
      throw new FaasError('validation_error', errorMessage(err), 'signal');
    }
  }

  resize(id: string, execId: string | undefined, cols: number, rows: number): void {
    this.findExec(id, execId).handle.resize(cols, rows);
  }

  async sandboxState(id: string): Promise<SandboxState> {
    const record = this.record(id);
    const s = this.live.get(id);
    const processes =
      record.status === 'running'
        ? (await this.runtime.processes(id)).map((p) => {
            const execId = p.execId !== undefined ? s?.byAgentId.get(p.execId) : undefined;
            return { pid: p.pid, command: p.command, ...(execId ? { exec_id: execId } : {}) };
          })
        : [];
    return { id, status: record.status, processes };
  }

  /** Lets a watcher receive every event of the sandbox; returns the function that stops it. */
  watch(id: string, listener: Listener, since?: number): () => void {
    this.record(id);
    const s = this.state(id);
    if (since !== undefined) {
      // Replay and subscribe in one synchronous step, so no event falls between them.
      const seqOf = (e: StreamEvent) => ('seq' in e ? (e.seq ?? 0) : 0);
      const oldest = s.history[0] ? seqOf(s.history[0]) : s.seq + 1;
      if (since + 1 < oldest && since < s.seq) {
        listener({
          type: 'error',
          code: 'replay_gap',
          message: `events ${since + 1} to ${oldest - 1} of sandbox ${id} are no longer kept (the last ${REPLAY_MAX_EVENTS} events or ${REPLAY_MAX_BYTES} bytes are); replaying from ${oldest}`,
        });
      }
      for (const event of s.history) if (seqOf(event) > since) listener(event);
    }
    s.hub.on('event', listener);
    s.watchers++;
    this.touch(id);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      s.hub.off('event', listener);
      s.watchers--;
      this.touch(id);
    };
  }

  stop(id: string, reason = 'request'): Promise<Container> {
    return this.serialize(id, async () => {
      const record = this.record(id);
      if (record.status !== 'running') return toContainer(record);
      const s = this.state(id);
      s.stopping = true;
      try {
        await this.runtime.stop(id);
      } finally {
        s.stopping = false;
      }
      this.store.setSandboxStatus(id, 'stopped', reason);
      this.lifecycle(id, 'stopped', { reason });
      this.refreshGauge();
      return toContainer(this.record(id));
    });
  }

  resume(id: string): Promise<Container> {
    return this.serialize(id, async () => {
      const record = this.record(id);
      if (record.status === 'running') return toContainer(record);
      if (record.status === 'lost') throw new FaasError('conflict', `sandbox ${id} is lost (its container is gone from the engine) and cannot be resumed; delete it`);
      this.state(id);
      await this.runtime.resume(id);
      this.store.setSandboxStatus(id, 'running', null);
      this.touch(id);
      this.lifecycle(id, 'resumed');
      this.refreshGauge();
      await this.startMainCommand({ ...record, status: 'running' });
      return toContainer(this.record(id));
    });
  }

  delete(id: string): Promise<void> {
    return this.serialize(id, async () => {
      this.record(id);
      const s = this.state(id);
      s.stopping = true;
      await this.runtime.remove(id);
      this.store.markSandboxDeleted(id);
      this.lastActive.delete(id);
      this.lastWritten.delete(id);
      this.lifecycle(id, 'deleted');
      s.hub.emit('closed');
      s.hub.removeAllListeners();
      this.live.delete(id);
      this.refreshGauge();
    });
  }

  /** Called when a sandbox goes away so its watchers can close; returns the unsubscribe function. */
  onClosed(id: string, listener: () => void): () => void {
    const hub = this.state(id).hub;
    hub.once('closed', listener);
    return () => hub.off('closed', listener);
  }

  /** Stops running sandboxes that saw no activity for their idle timeout. */
  async stopIdle(now = Date.now()): Promise<string[]> {
    const stopped: string[] = [];
    for (const record of this.records()) {
      if (record.status !== 'running' || record.idleTimeoutS <= 0) continue;
      const s = this.live.get(record.id);
      // An open stream or a running command (other than the kept-alive main command) is activity.
      const busy = (s !== undefined && (s.watchers > 0 || [...s.execs.keys()].some((k) => k !== 'main'))) || this.transfers.has(record.id);
      if (busy) continue;
      if (now - Date.parse(record.lastActiveAt) < record.idleTimeoutS * 1000) continue;
      try {
        await this.stop(record.id, 'idle');
        stopped.push(record.id);
      } catch {
        // Try again on the next round; a sandbox that cannot be stopped must not stop the others.
      }
    }
    return stopped;
  }

  /**
   * Brings the records in line with the engine after a (re)start: adopts running sandboxes, records those that
   * stopped or vanished, and removes containers of this gateway that no record owns (ephemeral leftovers).
   */
  async reconcile(): Promise<{ adopted: string[]; stopped: string[]; lost: string[]; removed: string[] }> {
    const result = { adopted: [] as string[], stopped: [] as string[], lost: [] as string[], removed: [] as string[] };
    const containers = new Map((await this.runtime.list()).map((c) => [c.id, c]));
    for (const record of this.store.listSandboxes()) {
      const container = containers.get(record.id);
      containers.delete(record.id);
      if (!container) {
        if (record.status !== 'lost') {
          this.store.setSandboxStatus(record.id, 'lost', 'vanished');
          this.lifecycle(record.id, 'lost', { reason: 'vanished' });
          result.lost.push(record.id);
        }
        continue;
      }
      if (container.running) {
        try {
          this.state(record.id);
          await this.runtime.adopt(record.id);
          if (record.status !== 'running') this.store.setSandboxStatus(record.id, 'running', null);
          result.adopted.push(record.id);
        } catch {
          await this.runtime.stop(record.id).catch(() => undefined);
          this.store.setSandboxStatus(record.id, 'stopped', 'engine');
          result.stopped.push(record.id);
        }
      } else if (record.status === 'running') {
        this.store.setSandboxStatus(record.id, 'stopped', 'engine');
        this.lifecycle(record.id, 'stopped', { reason: 'engine' });
        result.stopped.push(record.id);
      }
    }
    for (const orphan of containers.values()) {
      await this.runtime.remove(orphan.id).catch(() => undefined);
      result.removed.push(orphan.id);
    }
    this.refreshGauge();
    return result;
  }

  refreshGauge(): void {
    const counts = new Map<string, number>();
    for (const r of this.store.listSandboxes()) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
    this.metrics.liveSandboxes.reset();
    for (const [status, n] of counts) this.metrics.liveSandboxes.set({ kind: 'persistent', status }, n);
  }

  /** Detaches from every sandbox without stopping any: they keep running for the next gateway to adopt. */
  close(): void {
    for (const [id, at] of this.lastActive) {
      if (at > (this.lastWritten.get(id) ?? 0) && this.store.getSandbox(id)) this.store.touchSandbox(id, new Date(at).toISOString());
    }
    this.closed = true;
    for (const s of this.live.values()) {
      s.hub.emit('closed');
      s.hub.removeAllListeners();
    }
    this.live.clear();
  }
}

export function toContainer(r: SandboxRecord): Container {
  return {
    id: r.id,
    status: r.status,
    image: r.image,
    command: r.command,
    env: r.env,
    working_dir: r.workingDir,
    limits: r.limits,
    idle_timeout_s: r.idleTimeoutS,
    created_at: r.createdAt,
    last_active_at: r.lastActiveAt,
    stopped_reason: r.stoppedReason,
  };
}

const MAX_CUSTOM_PREVIEW = 200;

/** A line written to $FAAS_EVENTS must be JSON `{"name": string, "data": any}`; anything else becomes an error event. */
export function parseCustomEvent(line: string): StreamEvent {
  try {
    const parsed: unknown = JSON.parse(line);
    if (parsed && typeof parsed === 'object' && typeof (parsed as { name?: unknown }).name === 'string') {
      const { name, data } = parsed as { name: string; data?: unknown };
      return { type: 'custom', name, data: data ?? null };
    }
  } catch {
    // reported below
  }
  const preview = line.length > MAX_CUSTOM_PREVIEW ? `${line.slice(0, MAX_CUSTOM_PREVIEW)}…` : line;
  return {
    type: 'error',
    code: 'bad_custom_event',
    message: `a line written to $FAAS_EVENTS is not JSON of the form {"name": "...", "data": ...}: ${preview}`,
  };
}
