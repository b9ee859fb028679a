/**
 * How a sandbox becomes a Docker container: the agent as its main process behind the engine's init, the agent
 * binary and the per-sandbox socket folder bind-mounted, limits enforced by the kernel, labels that let the
 * platform find its own containers again after a restart.
 */
import type Docker from 'dockerode';
import type { SandboxSpec } from '../runtime.js';

/** Where things live inside every sandbox. */
export const IN_SANDBOX = {
  agent: '/.faas/bin/faas-agent',
  runDir: '/.faas/run',
  socket: '/.faas/run/agent.sock',
  events: '/.faas/run/events',
} as const;

export const LABELS = {
  managed: 'faas.managed',
  sandbox: 'faas.sandbox',
  instance: 'faas.instance',
} as const;

export interface ContainerSpecContext {
  agentPath: string;
  /** Host folder bind-mounted at IN_SANDBOX.runDir; holds the agent's socket. */
  hostRunDir: string;
  instanceId: string;
  /** The engine network sandboxes asking for `bridge` join: outbound access, but no traffic between sandboxes. */
  bridgeNetwork: string;
}

const MiB = 1024 * 1024;

/**
 * Capabilities a sandbox keeps (all others are dropped): enough for package managers and ordinary tools running
 * as root inside (file ownership, permission bypass on their own files, switching to service users, signals,
 * binding ports below 1024). Gone among others: NET_RAW (raw packets), MKNOD, SYS_CHROOT, SETFCAP, SETPCAP,
 * AUDIT_WRITE, and of course everything the engine never grants (SYS_ADMIN, SYS_PTRACE, ...).
 */
export const SANDBOX_CAPABILITIES = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'NET_BIND_SERVICE'] as const;

/** Size of each writable tmpfs of a read-only sandbox. */
const TMPFS_MB = 256;

export function containerName(sandboxId: string): string {
  return `faas-${sandboxId}`;
}

export function buildContainerOptions(spec: SandboxSpec, ctx: ContainerSpecContext): Docker.ContainerCreateOptions {
  const { memoryMb, cpuCores, pidsLimit, network, readOnly } = spec.limits;
  const env = { ...spec.env, FAAS_EVENTS: IN_SANDBOX.events, FAAS_SANDBOX_ID: spec.id };
  return {
    name: containerName(spec.id),
    Image: spec.image,
    Entrypoint: [IN_SANDBOX.agent],
    Cmd: ['--socket', IN_SANDBOX.socket, '--workspace', spec.workingDir, '--events', IN_SANDBOX.events],
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    WorkingDir: spec.workingDir,
    Labels: {
      ...spec.labels,
      [LABELS.managed]: 'true',
      [LABELS.sandbox]: spec.id,
      [LABELS.instance]: ctx.instanceId,
    },
    NetworkDisabled: network === 'none',
    HostConfig: {
      // tini as PID 1 reaps orphans and forwards signals, so the agent only minds its own children.
      Init: true,
      Binds: [`${ctx.agentPath}:${IN_SANDBOX.agent}:ro`, `${ctx.hostRunDir}:${IN_SANDBOX.runDir}`],
      Mounts: (spec.volumes ?? []).map((v) => ({ Type: 'volume' as const, Source: v.volume, Target: v.target, ReadOnly: v.readOnly ?? false })),
      NetworkMode: network === 'bridge' ? ctx.bridgeNetwork : 'none',
      Memory: memoryMb !== undefined ? memoryMb * MiB : 0,
      // Equal to Memory: no swap, so a memory hog meets the OOM killer instead of thrashing.
      MemorySwap: memoryMb !== undefined ? memoryMb * MiB : 0,
      NanoCpus: cpuCores !== undefined ? Math.round(cpuCores * 1e9) : 0,
      // The init and the agent count against the limit too.
      PidsLimit: pidsLimit !== undefined ? pidsLimit + 2 : 0,
      // The engine's default seccomp profile applies (it is never turned off here); on top of it no process can gain
      // privileges, and only the capabilities that ordinary tools (package managers, chown, kill) need are kept.
      SecurityOpt: ['no-new-privileges'],
      CapDrop: ['ALL'],
      CapAdd: [...SANDBOX_CAPABILITIES],
      ReadonlyRootfs: readOnly === true,
      ...(readOnly ? { Tmpfs: { '/tmp': `rw,exec,nosuid,nodev,size=${TMPFS_MB}m`, [spec.workingDir]: `rw,exec,nosuid,nodev,size=${TMPFS_MB}m` } } : {}),
      AutoRemove: false,
    },
  };
}
