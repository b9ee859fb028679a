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
}

const MiB = 1024 * 1024;

export function containerName(sandboxId: string): string {
  return `faas-${sandboxId}`;
}

export function buildContainerOptions(spec: SandboxSpec, ctx: ContainerSpecContext): Docker.ContainerCreateOptions {
  const { memoryMb, cpuCores, pidsLimit, network } = spec.limits;
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
      NetworkMode: network,
      Memory: memoryMb !== undefined ? memoryMb * MiB : 0,
      // Equal to Memory: no swap, so a memory hog meets the OOM killer instead of thrashing.
      MemorySwap: memoryMb !== undefined ? memoryMb * MiB : 0,
      NanoCpus: cpuCores !== undefined ? Math.round(cpuCores * 1e9) : 0,
      // The init and the agent count against the limit too.
      PidsLimit: pidsLimit !== undefined ? pidsLimit + 2 : 0,
      SecurityOpt: ['no-new-privileges'],
      AutoRemove: false,
    },
  };
}
