/**
 * The Docker runtime: sandboxes are containers created through the Engine API (never the CLI), each running the
 * in-sandbox agent, which the runtime reaches over a unix socket in a bind-mounted host folder.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';
import { AgentClient } from '../agent/index.js';
import { FaasError, errorMessage } from '../../errors.js';
import type {
  FilesystemChanges,
  ProcessHandle,
  ProcessSpec,
  Runtime,
  RuntimeHealth,
  SandboxEvents,
  SandboxFileRead,
  SandboxInfo,
  SandboxPathStat,
  SandboxSpec,
} from '../runtime.js';
import { IN_SANDBOX, LABELS, buildContainerOptions, containerName } from './container-spec.js';
import { checkImageName, engineError, isNotFound } from './engine-errors.js';
import { type CapturedChanges, captureChanges } from './filesystem-diff.js';
import { ImageIdMemo } from './image-ids.js';
import { FILE_READ_STALL_MS, readFile, statPath, writeFiles } from './sandbox-files.js';

/** How often a starting sandbox is checked for having exited while its agent is awaited. */
const EXIT_POLL_MS = 250;

/** The text of a non-TTY container's log (frames of an 8-byte header — stream, 0, 0, 0, u32 length — then data). */
function demuxedText(log: Buffer): string {
  const parts: Buffer[] = [];
  for (let at = 0; at + 8 <= log.length; ) {
    const length = log.readUInt32BE(at + 4);
    parts.push(log.subarray(at + 8, at + 8 + length));
    at += 8 + length;
  }
  return Buffer.concat(parts).toString('utf8');
}

export interface DockerRuntimeOptions {
  socketPath: string;
  agentPath: string;
  /** Folder under which each sandbox gets the folder holding its agent socket. */
  runRoot: string;
  /** Labels this gateway's containers so that several gateways can share one engine. */
  instanceId: string;
  /** How long to wait for a new sandbox's agent to answer. */
  agentTimeoutMs?: number;
  /** How long a pull of a missing image may take before it counts as failed. */
  pullTimeoutMs?: number;
  /** How long a file being read may wait for its consumer before the read is abandoned (default 30 s). */
  fileReadStallMs?: number;
}

export const BRIDGE_NETWORK = 'faas-isolated';

interface LiveSandbox {
  agent: AgentClient | null;
  events: EventEmitter;
}

export class DockerRuntime implements Runtime {
  readonly name = 'docker';
  readonly docker: Docker;
  private readonly live = new Map<string, LiveSandbox>();
  /** Closed while a capture keeps a sandbox's files still: its execs wait. */
  private readonly execGates = new Map<string, Promise<void>>();
  /** Files being read out of each sandbox, by how to cut them: the engine holds the sandbox while they last. */
  private readonly fileReads = new Map<string, Set<(why: string) => void>>();
  private bridgeReady: Promise<void> | undefined;

  constructor(private readonly opts: DockerRuntimeOptions) {
    this.docker = new Docker({ socketPath: opts.socketPath, timeout: 120_000 });
  }

  private get where(): string {
    return `the Docker engine at ${this.opts.socketPath}`;
  }

  async health(): Promise<RuntimeHealth> {
    try {
      const version = await withTimeout(this.docker.version(), 3000, 'no answer within 3 s');
      return { reachable: true, version: `Docker ${version.Version} (API ${version.ApiVersion})`, error: null };
    } catch (err) {
      return { reachable: false, version: null, error: errorMessage(err) };
    }
  }

  async resolveImage(image: string): Promise<string> {
    checkImageName(image);
    try {
      return (await this.docker.getImage(image).inspect()).Id;
    } catch (err) {
      if (!isNotFound(err)) throw engineError(err, this.where);
    }
    const pullError = await this.pull(image);
    try {
      return (await this.docker.getImage(image).inspect()).Id;
    } catch {
      throw new FaasError(
        'image_not_found',
        `image "${image}" is not present in the engine and pulling it failed (${pullError ?? 'unknown error'}); build it locally or name an image from \`faas images ls\``,
        'image',
      );
    }
  }

  async imageLabels(image: string): Promise<Record<string, string>> {
    checkImageName(image);
    try {
      return (await this.docker.getImage(image).inspect()).Config?.Labels ?? {};
    } catch (err) {
      if (isNotFound(err)) return {};
      throw engineError(err, this.where, `inspecting image ${image}`);
    }
  }

  /** Tries one pull; returns why it failed, or null. */
  private async pull(image: string): Promise<string | null> {
    try {
      const stream = await this.docker.pull(image);
      await withTimeout(
        new Promise<void>((resolve, reject) =>
          this.docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve())),
        ),
        this.opts.pullTimeoutMs ?? 15_000,
        'the pull timed out',
      );
      return null;
    } catch (err) {
      return errorMessage(err).replace(/^\(HTTP code \d+\)\s*/, '').trim();
    }
  }

  /**
   * The network for sandboxes with `network: bridge`: a bridge with inter-container traffic disabled, so a sandbox
   * reaches the outside but not its neighbours. Created once, shared by the gateways of this engine.
   */
  private ensureBridgeNetwork(): Promise<void> {
    this.bridgeReady ??= (async () => {
      const existing = await this.docker.listNetworks({ filters: { name: [BRIDGE_NETWORK] } });
      if (existing.some((n) => n.Name === BRIDGE_NETWORK)) return;
      try {
        await this.docker.createNetwork({
          Name: BRIDGE_NETWORK,
          Driver: 'bridge',
          CheckDuplicate: true,
          Options: { 'com.docker.network.bridge.enable_icc': 'false' },
          Labels: { [LABELS.managed]: 'true' },
        });
      } catch (err) {
        // Another gateway may have created it at the same moment.
        if ((err as { statusCode?: number }).statusCode !== 409) throw engineError(err, this.where, `creating the ${BRIDGE_NETWORK} network`);
      }
    })().catch((err: unknown) => {
      this.bridgeReady = undefined;
      throw err;
    });
    return this.bridgeReady;
  }

  private hostRunDir(id: string): string {
    return path.join(this.opts.runRoot, id);
  }

  async create(spec: SandboxSpec): Promise<SandboxInfo> {
    const runDir = this.hostRunDir(spec.id);
    fs.mkdirSync(runDir, { recursive: true });
    // The agent runs as the image's USER, which must be able to make its socket here. Only root on the host can
    // reach it: the run root above it is 0700.
    fs.chmodSync(runDir, 0o1777);
    if (spec.limits.network === 'bridge') await this.ensureBridgeNetwork();
    const options = buildContainerOptions(spec, {
      agentPath: this.opts.agentPath,
      hostRunDir: runDir,
      instanceId: this.opts.instanceId,
      bridgeNetwork: BRIDGE_NETWORK,
    });
    let container: Docker.Container | null = null;
    try {
      container = await this.docker.createContainer(options);
      await container.start();
      await this.connect(spec.id);
      const info = await this.inspect(spec.id);
      if (!info) throw new FaasError('internal_error', `sandbox ${spec.id} vanished right after it started`);
      return info;
    } catch (err) {
      // Never leave a half-made sandbox behind.
      this.disconnect(spec.id);
      if (container) await container.remove({ force: true, v: true }).catch(() => undefined);
      fs.rmSync(runDir, { recursive: true, force: true });
      if (err instanceof FaasError) throw err;
      if (isNotFound(err)) {
        throw new FaasError('image_not_found', `image "${spec.image}" is not present in the engine`, 'image');
      }
      // The engine checks the CPU cap against its host's CPUs (e.g. "Range of CPUs is from 0.01 to 2.00").
      const range = /Range of CPUs is from [\d.]+ to [\d.]+/i.exec(errorMessage(err));
      if (range) {
        throw new FaasError('validation_error', `cpu_cores ${spec.limits.cpuCores} is more than the engine's host has (${range[0]}); ask for fewer cores`, 'cpu_cores');
      }
      throw engineError(err, this.where, `creating sandbox ${spec.id}`);
    }
  }

  /** Connects to the sandbox's agent and relays its events. */
  private async connect(id: string): Promise<void> {
    const socket = path.join(this.hostRunDir(id), path.basename(IN_SANDBOX.socket));
    let agent: AgentClient;
    // A container whose agent could not start ends at once: say so then, not after the whole timeout.
    const stop = new AbortController();
    try {
      agent = await Promise.race([AgentClient.connect(socket, { timeoutMs: this.opts.agentTimeoutMs ?? 10_000, signal: stop.signal }), this.exitOf(id, stop.signal)]);
    } catch (err) {
      if (err instanceof FaasError) throw err;
      const info = await this.inspect(id).catch(() => null);
      const state = info && !info.running ? ` (the container exited with code ${info.exitCode})` : '';
      throw new FaasError('internal_error', `the agent of sandbox ${id} did not answer on ${socket}${state}: ${errorMessage(err)}`);
    } finally {
      stop.abort();
    }
    const entry = this.entry(id);
    entry.agent = agent;
    agent.subscribe();
    for (const kind of ['file_event', 'process_event', 'custom'] as const) {
      agent.on(kind, (event: unknown) => entry.events.emit(kind, event));
    }
    agent.on('close', () => {
      if (entry.agent !== agent) return;
      entry.agent = null;
      entry.events.emit('down', new Error(`the agent of sandbox ${id} went away`));
    });
  }

  /** Rejects, with the end of its output, once the sandbox's container is no longer running (until `signal`). */
  private async exitOf(id: string, signal: AbortSignal): Promise<never> {
    const container = this.docker.getContainer(containerName(id));
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, EXIT_POLL_MS));
      if (signal.aborted) return new Promise<never>(() => undefined);
      const info = await this.inspect(id).catch(() => null);
      if (info === null || info.running) continue;
      const logs = await container.logs({ stdout: true, stderr: true, tail: 20 }).catch(() => null);
      const output = logs ? demuxedText(logs).trim() : '';
      throw new FaasError(
        'internal_error',
        `sandbox ${id} stopped before its agent answered (exit code ${info.exitCode})${output ? `; its output: ${output.slice(-1000)}` : ''} — check that image ${info.image} can run the agent`,
      );
    }
  }

  private entry(id: string): LiveSandbox {
    let entry = this.live.get(id);
    if (!entry) {
      entry = { agent: null, events: new EventEmitter() };
      // Many watchers (WebSocket clients) may listen to one sandbox.
      entry.events.setMaxListeners(0);
      this.live.set(id, entry);
    }
    return entry;
  }

  private disconnect(id: string): void {
    const entry = this.live.get(id);
    if (!entry) return;
    const agent = entry.agent;
    entry.agent = null;
    agent?.close();
  }

  private agentOf(id: string): AgentClient {
    const agent = this.live.get(id)?.agent;
    if (!agent) throw new FaasError('conflict', `sandbox ${id} is not running; resume it first`);
    return agent;
  }

  async exec(id: string, spec: ProcessSpec): Promise<ProcessHandle> {
    await this.execGateOpen(id);
    const process = this.agentOf(id).spawn({
      argv: spec.argv,
      ...(spec.env ? { env: spec.env } : {}),
      ...(spec.cwd ? { cwd: spec.cwd } : {}),
      ...(spec.pty ? { pty: spec.pty } : {}),
      stdin: spec.stdin ?? false,
    });
    return process;
  }

  events(id: string): SandboxEvents {
    return this.entry(id).events;
  }

  async processes(id: string): Promise<Array<{ pid: number; ppid: number; command: string; execId?: number }>> {
    return this.agentOf(id).listProcesses();
  }

  async ping(id: string, timeoutMs: number): Promise<number> {
    return withTimeout(this.agentOf(id).ping(), timeoutMs, `the agent of sandbox ${id} did not answer a ping within ${timeoutMs} ms`);
  }

  async stop(id: string): Promise<void> {
    this.disconnect(id);
    this.cutFileReads(id, `sandbox ${id} was stopped while the file was read`);
    try {
      // The agent ends its children on SIGTERM at once; the grace only covers a wedged sandbox.
      await this.docker.getContainer(containerName(id)).stop({ t: 5 });
    } catch (err) {
      if (isNotModified(err)) return;
      if (isNotFound(err)) throw new FaasError('not_found', `sandbox ${id} no longer exists in the engine`);
      throw engineError(err, this.where, `stopping sandbox ${id}`);
    }
  }

  async resume(id: string): Promise<void> {
    this.cutFileReads(id, `sandbox ${id} was resumed while the file was read`);
    try {
      await this.docker.getContainer(containerName(id)).start();
    } catch (err) {
      if (isNotFound(err)) throw new FaasError('not_found', `sandbox ${id} no longer exists in the engine`);
      if (!isNotModified(err)) throw engineError(err, this.where, `resuming sandbox ${id}`);
    }
    if (!this.live.get(id)?.agent) await this.connect(id);
  }

  async adopt(id: string): Promise<void> {
    if (!this.live.get(id)?.agent) await this.connect(id);
  }

  async remove(id: string): Promise<void> {
    this.disconnect(id);
    const entry = this.live.get(id);
    this.live.delete(id);
    entry?.events.emit('down', new Error(`sandbox ${id} was removed`));
    this.cutFileReads(id, `sandbox ${id} was removed while the file was read`);
    try {
      await this.docker.getContainer(containerName(id)).remove({ force: true, v: true });
    } catch (err) {
      if (!isNotFound(err) && !isRemovalInProgress(err)) throw engineError(err, this.where, `removing sandbox ${id}`);
    } finally {
      // Off the event loop: on this class of disk removing the folder blocked it for ~1.3 ms per sandbox.
      await fs.promises.rm(this.hostRunDir(id), { recursive: true, force: true });
    }
  }

  async inspect(id: string): Promise<SandboxInfo | null> {
    try {
      const info = await this.docker.getContainer(containerName(id)).inspect();
      return {
        id,
        runtimeId: info.Id,
        running: info.State.Running,
        image: info.Config.Image,
        imageId: info.Image,
        labels: info.Config.Labels ?? {},
        oomKilled: info.State.OOMKilled,
        exitCode: info.State.Running ? null : info.State.ExitCode,
      };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw engineError(err, this.where, `inspecting sandbox ${id}`);
    }
  }

  async list(): Promise<SandboxInfo[]> {
    let containers: Docker.ContainerInfo[];
    try {
      containers = await this.docker.listContainers({
        all: true,
        filters: { label: [`${LABELS.managed}=true`, `${LABELS.instance}=${this.opts.instanceId}`] },
      });
    } catch (err) {
      throw engineError(err, this.where, 'listing sandboxes');
    }
    return containers.map((c) => ({
      id: c.Labels[LABELS.sandbox] ?? '',
      runtimeId: c.Id,
      running: c.State === 'running',
      image: c.Image,
      imageId: c.ImageID,
      labels: c.Labels,
      oomKilled: false,
      exitCode: null,
    }));
  }

  private imageIdMemo: ImageIdMemo | null = null;

  async imageId(image: string): Promise<string> {
    this.imageIdMemo ??= new ImageIdMemo(this.docker);
    const { id, generation } = this.imageIdMemo.get(image);
    if (id !== undefined) return id;
    const resolved = await this.resolveImage(image);
    this.imageIdMemo.remember(image, resolved, generation);
    return resolved;
  }

  async captureChanges<T>(id: string, consume: (changes: FilesystemChanges) => Promise<T>, opts: { freeze?: boolean } = {}): Promise<T> {
    const container = this.docker.getContainer(containerName(id));
    let info: Docker.ContainerInspectInfo;
    try {
      info = await container.inspect();
    } catch (err) {
      if (isNotFound(err)) throw new FaasError('not_found', `sandbox ${id} no longer exists in the engine`);
      throw engineError(err, this.where, `inspecting sandbox ${id}`);
    }
    // Still while its files are read, so the snapshot is one consistent moment.
    const hold = opts.freeze !== false && info.State.Running && !info.State.Paused;
    const release = hold ? await this.holdStill(id, container) : async () => undefined;
    let captured: CapturedChanges | undefined;
    let released: Promise<void> | undefined;
    try {
      captured = await captureChanges(container, info);
      // It may change again as soon as its files have been read, while the consumer still stores them.
      released = captured.read.then(release);
      return await consume({
        archive: captured.archive,
        deletions: captured.deletions,
        image: info.Config.Image,
        imageId: info.Image,
        stats: captured.stats,
      });
    } finally {
      // An archive the consumer left unread would keep the engine's archive request (and the container) busy.
      captured?.archive.destroy();
      await (released ?? release());
    }
  }

  /**
   * Keeps the sandbox's files still until the returned function is called: no exec starts meanwhile, and a
   * sandbox where anything runs besides its init and agent is frozen (cgroup freezer). An idle one need not be,
   * which saves the engine's pause and unpause (about a third of a small checkpoint).
   */
  private async holdStill(id: string, container: Docker.Container): Promise<() => Promise<void>> {
    const reopen = await this.closeExecGate(id);
    if (await this.isIdle(id)) return async () => reopen();
    try {
      await container.pause();
    } catch (err) {
      reopen();
      throw engineError(err, this.where, `pausing sandbox ${id}`);
    }
    return async () => {
      await container.unpause().catch(() => undefined);
      reopen();
    };
  }

  /** Only its init and its agent run in it: nothing that could change its files. */
  private async isIdle(id: string): Promise<boolean> {
    const agent = this.live.get(id)?.agent;
    if (!agent) return false;
    const processes = await withTimeout(agent.listProcesses(), 1000, 'no process list').catch(() => null);
    return processes !== null && processes.every((p) => p.pid === 1 || (p.ppid === 1 && p.command.startsWith(IN_SANDBOX.agent)));
  }

  /** Stops new execs of the sandbox until the returned function is called (captures of one sandbox take turns). */
  private async closeExecGate(id: string): Promise<() => void> {
    await this.execGateOpen(id);
    let reopen!: () => void;
    const gate = new Promise<void>((resolve) => (reopen = resolve));
    this.execGates.set(id, gate);
    return () => {
      if (this.execGates.get(id) === gate) this.execGates.delete(id);
      reopen();
    };
  }

  private async execGateOpen(id: string): Promise<void> {
    for (let gate = this.execGates.get(id); gate; gate = this.execGates.get(id)) await gate;
  }

  async applyChanges(id: string, archive: NodeJS.ReadableStream, deletions: string[]): Promise<void> {
    for (let i = 0; i < deletions.length; i += 256) {
      const batch = deletions.slice(i, i + 256);
      const handle = await this.exec(id, { argv: ['rm', '-rf', '--', ...batch] });
      let stderr = '';
      handle.on('stderr', (d: Buffer) => (stderr += d.toString()));
      const exit = await handle.exited;
      if (exit.exitCode !== 0) throw new FaasError('internal_error', `removing the paths deleted in the snapshot failed in sandbox ${id} (exit ${exit.exitCode}): ${stderr.trim()}`);
    }
    try {
      // Owners come from the archive's headers; copyUIDGID would give every path the image's USER instead.
      await this.docker.getContainer(containerName(id)).putArchive(archive, { path: '/' });
    } catch (err) {
      throw engineError(err, this.where, `restoring files into sandbox ${id}`);
    }
  }

  async statPath(id: string, filePath: string): Promise<SandboxPathStat> {
    return statPath(this.docker.getContainer(containerName(id)), filePath, this.where, id);
  }

  async readFile(id: string, filePath: string): Promise<SandboxFileRead> {
    return readFile(this.docker.getContainer(containerName(id)), filePath, {
      where: this.where,
      sandbox: id,
      stallMs: this.opts.fileReadStallMs ?? FILE_READ_STALL_MS,
      track: (abort) => {
        let reads = this.fileReads.get(id);
        if (!reads) this.fileReads.set(id, (reads = new Set()));
        reads.add(abort);
        return () => {
          reads.delete(abort);
          if (reads.size === 0 && this.fileReads.get(id) === reads) this.fileReads.delete(id);
        };
      },
    });
  }

  async writeFiles(id: string, archive: NodeJS.ReadableStream): Promise<void> {
    // Like an exec, a write waits while a capture holds the sandbox's files still.
    await this.execGateOpen(id);
    await writeFiles(this.docker.getContainer(containerName(id)), archive, this.where, id);
  }

  /** Ends the file reads of a sandbox, whose engine lock would otherwise hold up a stop, resume or removal. */
  private cutFileReads(id: string, why: string): void {
    for (const abort of [...(this.fileReads.get(id) ?? [])]) abort(why);
  }

  async close(): Promise<void> {
    this.imageIdMemo?.close();
    for (const id of [...this.live.keys()]) this.disconnect(id);
    this.live.clear();
  }
}

function isNotModified(err: unknown): boolean {
  return (err as { statusCode?: number }).statusCode === 304;
}

function isRemovalInProgress(err: unknown): boolean {
  return (err as { statusCode?: number }).statusCode === 409 && /removal of container .* is already in progress/i.test(errorMessage(err));
}

export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
