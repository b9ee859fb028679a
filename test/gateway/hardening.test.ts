// Each test tries to break out of or bring down a sandbox, and checks that the platform holds.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_CAPABILITIES } from '../../src/runtimes/docker/container-spec.js';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';

let gw: TestGateway;
const execute = (body: object) => api(gw.url, 'POST', '/api/v1/execute', body);

beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(async () => {
  await gw?.close();
});

const CAP_BITS: Record<string, number> = { CHOWN: 0, DAC_OVERRIDE: 1, FOWNER: 3, FSETID: 4, KILL: 5, SETGID: 6, SETUID: 7, NET_BIND_SERVICE: 10 };

describe('sandbox hardening', () => {
  it('keeps only the documented capabilities, with no new privileges and the default seccomp profile', async () => {
    const res = await execute({ command: 'grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status' });
    const status = Object.fromEntries(res.body.stdout.trim().split('\n').map((l: string) => l.split(/:\s+/)));
    const mask = SANDBOX_CAPABILITIES.reduce((m, c) => m | (1n << BigInt(CAP_BITS[c]!)), 0n);
    expect(BigInt(`0x${status.CapEff}`)).toBe(mask);
    expect(BigInt(`0x${status.CapBnd}`)).toBe(mask);
    expect(status.NoNewPrivs).toBe('1');
    expect(status.Seccomp).toBe('2');
    // Without NET_RAW and SYS_ADMIN these fail even as root.
    const denied = await execute({ command: 'mount -t tmpfs none /mnt 2>&1; echo mount=$?; mknod /tmp/dev c 1 3 2>&1; echo mknod=$?' });
    expect(denied.body.stdout).toMatch(/mount=[1-9]/);
    expect(denied.body.stdout).toMatch(/mknod=[1-9]/);
  });

  it('shows neither the engine socket nor the host files', async () => {
    const marker = path.join(os.tmpdir(), `faas-host-marker-${process.pid}`);
    fs.writeFileSync(marker, 'host secret');
    try {
      const res = await execute({ command: `ls /var/run/docker.sock /run/docker.sock 2>&1; cat ${marker} 2>&1; echo done` });
      expect(res.body.stdout).not.toContain('host secret');
      expect(res.body.stdout).toMatch(/No such file/);
      expect(res.body.stdout.trim().endsWith('done')).toBe(true);
    } finally {
      fs.rmSync(marker);
    }
  });

  // Tests only ever send traffic to loopback addresses, so the network isolation is checked through the engine's
  // configuration and from inside the sandbox's own network namespace.
  it('has no way to the gateway: its loopback is the sandbox\'s own, the gateway listens on the host\'s', async () => {
    const port = new URL(gw.url).port;
    const res = await execute({
      command: `(echo pong | nc -l -p 7000 &) ; sleep 0.3; nc -w 2 127.0.0.1 7000 </dev/null; echo own=$?; nc -w 2 127.0.0.1 ${port} </dev/null; echo gateway=$?`,
      network: 'bridge',
    });
    // A listener of its own on loopback answers, so the refused gateway port is isolation, not a broken tool.
    expect(res.body.stdout).toContain('pong');
    expect(res.body.stdout).toMatch(/own=0/);
    expect(res.body.stdout).toMatch(/gateway=[1-9]/);
    expect(new URL(gw.url).hostname).toBe('127.0.0.1');
  });

  it('puts sandboxes that ask for a network on a bridge without traffic between them', async () => {
    const res = await execute({ command: 'ls /sys/class/net', network: 'bridge' });
    expect(res.body.stdout).toContain('eth0');
    const docker = (gw.gateway.platform.runtime as unknown as { docker: import('dockerode') }).docker;
    const network = await docker.getNetwork('faas-isolated').inspect();
    expect(network.Options['com.docker.network.bridge.enable_icc']).toBe('false');
    expect(network.Labels['faas.managed']).toBe('true');
  });

  it('offers a read-only root whose writable tmpfs mounts cap disk writes', async () => {
    const res = await execute({
      command: 'touch /etc/x 2>&1; echo root=$?; touch /tmp/x /workspace/y && echo writable; dd if=/dev/zero of=/workspace/big bs=1M count=400 2>&1; echo dd=$?',
      read_only: true,
      memory_mb: 1024,
    });
    expect(res.body.stdout).toMatch(/Read-only file system[\s\S]*root=1/);
    expect(res.body.stdout).toContain('writable');
    expect(res.body.stdout).toMatch(/No space left on device[\s\S]*dd=1/);
  });
});

describe('hostile workloads are contained and the gateway stays healthy', () => {
  it('a process that ignores SIGTERM is killed at the timeout', async () => {
    const started = Date.now();
    const res = await execute({ command: "trap '' TERM INT; while true; do sleep 1; done", timeout_ms: 500 });
    expect(res.body).toMatchObject({ timed_out: true, signal: 'SIGKILL' });
    // Timed from the process start (a slow cold start does not count): killed at the timeout, with no grace.
    expect(res.body.duration_ms).toBeGreaterThanOrEqual(450);
    expect(res.body.duration_ms).toBeLessThan(3000);
    expect(Date.now() - started).toBeLessThan(10_000); // cold start included
  });

  it('a zombie storm is reaped', async () => {
    const res = await execute({ command: 'for i in $(seq 300); do (sleep 0.01 &); done; sleep 1; ps -o stat | grep -c Z; true', timeout_ms: 20_000 });
    expect(Number(res.body.stdout.trim())).toBe(0);
  });

  it('an output flood is cut at the cap and reported', async () => {
    const res = await execute({ command: 'yes flood | head -c 100000000', timeout_ms: 30_000 });
    expect(res.body.stdout_truncated).toBe(true);
    expect(res.body.stdout.length).toBe(16 * 1024 * 1024);
  });

  it('a fork bomb, a memory bomb and a disk fill leave others running', async () => {
    const neighbour = (await api(gw.url, 'POST', '/api/v1/containers', {})).body.id;
    try {
      const [bomb, hog] = await Promise.all([
        execute({ command: 'b() { b | b & }; b', pids_limit: 64, timeout_ms: 3000 }),
        execute({ command: 'x=a; while true; do x="$x$x"; done', memory_mb: 48, timeout_ms: 20_000 }),
      ]);
      expect(bomb.status).toBe(200);
      expect(hog.body.oom_killed).toBe(true);
      const fine = await api(gw.url, 'POST', `/api/v1/containers/${neighbour}/exec`, { command: 'echo still here' });
      expect(fine.body.stdout).toBe('still here\n');
      expect((await api(gw.url, 'GET', '/health')).status).toBe(200);
    } finally {
      await api(gw.url, 'DELETE', `/api/v1/containers/${neighbour}`);
    }
  });
});
