import { describe, expect, it } from 'vitest';
import {
  OPTION_TO_WIRE,
  ValidationError,
  createRequestToWire,
  execRequestToWire,
  executeRequestToWire,
  optionName,
  resultFromWire,
  sandboxInfoFromWire,
  streamExecToWire,
  FaasError,
} from '@faas/sdk';

describe('option mapping (camelCase → wire)', () => {
  it('maps every execute option to its snake_case field and drops callbacks and undefined values', () => {
    const wire = executeRequestToWire({
      command: 'echo hi',
      mode: 'ephemeral',
      image: 'faas/busybox:latest',
      env: { A_B: '1' },
      workingDir: '/tmp',
      stdin: 'in',
      timeoutMs: 5000,
      memoryMb: 128,
      cpuCores: 0.5,
      pidsLimit: 64,
      network: 'none',
      onStdout: () => undefined,
      onStderr: undefined,
    });
    expect(wire).toEqual({
      command: 'echo hi',
      mode: 'ephemeral',
      image: 'faas/busybox:latest',
      env: { A_B: '1' },
      working_dir: '/tmp',
      stdin: 'in',
      timeout_ms: 5000,
      memory_mb: 128,
      cpu_cores: 0.5,
      pids_limit: 64,
      network: 'none',
    });
  });

  it('keeps env names as given (only top-level keys are renamed)', () => {
    expect(execRequestToWire({ argv: ['env'], env: { camelCase: 'x', snake_case: 'y' } })).toEqual({
      argv: ['env'],
      env: { camelCase: 'x', snake_case: 'y' },
    });
  });

  it('maps create options, including idleTimeoutS', () => {
    expect(createRequestToWire({ image: 'alpine', idleTimeoutS: 60, workingDir: '/w', memoryMb: 64 })).toEqual({
      image: 'alpine',
      idle_timeout_s: 60,
      working_dir: '/w',
      memory_mb: 64,
    });
    expect(createRequestToWire({})).toEqual({});
  });

  it('maps stream exec options with the command and type', () => {
    expect(streamExecToWire('sh', { execId: 'e1', pty: true, cols: 80, rows: 24, workingDir: '/', timeoutMs: 10 })).toEqual({
      type: 'exec',
      command: 'sh',
      exec_id: 'e1',
      pty: true,
      cols: 80,
      rows: 24,
      working_dir: '/',
      timeout_ms: 10,
    });
  });

  it('has a reverse name for every wire field', () => {
    for (const [option, wire] of Object.entries(OPTION_TO_WIRE)) expect(optionName(wire)).toBe(option);
  });
});

describe('client-side validation', () => {
  const fails = (fn: () => unknown): ValidationError => {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError);
      expect(err).toBeInstanceOf(FaasError);
      return err as ValidationError;
    }
    throw new Error('expected a ValidationError');
  };

  it('names the camelCase option, not the wire field', () => {
    const err = fails(() => executeRequestToWire({ command: 'x', timeoutMs: 0 }));
    expect(err.field).toBe('timeoutMs');
    expect(err.message).toContain('`timeoutMs`');
    expect(err.status).toBe(0);
    expect(err.code).toBe('validation_error');
    expect(fails(() => executeRequestToWire({ command: 'x', workingDir: 'relative' })).field).toBe('workingDir');
    expect(fails(() => executeRequestToWire({ command: 'x', memoryMb: 1 })).field).toBe('memoryMb');
    expect(fails(() => executeRequestToWire({ command: 'x', mode: 'nope' as never })).field).toBe('mode');
    expect(fails(() => createRequestToWire({ idleTimeoutS: -1 })).field).toBe('idleTimeoutS');
  });

  it('requires exactly one of command and argv', () => {
    expect(fails(() => executeRequestToWire({})).field).toBe('command');
    expect(fails(() => executeRequestToWire({ command: 'a', argv: ['b'] })).message).toContain('exactly one');
    expect(fails(() => execRequestToWire({ argv: [] })).field).toBe('argv');
  });

  it('rejects unknown options (JavaScript callers, typos) and options of another call', () => {
    expect(fails(() => executeRequestToWire({ command: 'x', comand: 'y' } as never)).message).toContain('unknown option `comand`');
    expect(fails(() => execRequestToWire({ command: 'x', image: 'alpine' } as never)).field).toBe('image');
    expect(fails(() => executeRequestToWire({ command: 'x', onStdout: 'no' } as never)).field).toBe('onStdout');
  });

  it('sends checkpoint and the cache options', () => {
    expect(executeRequestToWire({ command: 'x', mode: 'checkpointed', checkpoint: 'snap_1', cacheTtlS: 5, cacheFailures: true })).toMatchObject({
      checkpoint: 'snap_1',
      cache_ttl_s: 5,
      cache_failures: true,
    });
  });

  it('checks stream exec options', () => {
    expect(fails(() => streamExecToWire('sh', { cols: 0 })).field).toBe('cols');
    expect(fails(() => streamExecToWire('', {})).field).toBe('command');
  });
});

describe('answers (wire → camelCase)', () => {
  it('maps an execution result', () => {
    expect(
      resultFromWire({
        id: 'x1',
        mode: 'ephemeral',
        exit_code: 3,
        signal: null,
        stdout: 'o',
        stderr: 'e',
        stdout_truncated: false,
        stderr_truncated: true,
        duration_ms: 12,
        timed_out: false,
        oom_killed: false,
        container_id: 'c1',
        future_field: 1,
      }),
    ).toEqual({
      id: 'x1',
      mode: 'ephemeral',
      exitCode: 3,
      signal: null,
      stdout: 'o',
      stderr: 'e',
      stdoutTruncated: false,
      stderrTruncated: true,
      durationMs: 12,
      timedOut: false,
      oomKilled: false,
      containerId: 'c1',
    });
  });

  it('maps a container', () => {
    const info = sandboxInfoFromWire({
      id: 'c1',
      status: 'running',
      image: 'img',
      command: null,
      env: {},
      working_dir: '/workspace',
      limits: { memory_mb: 64, cpu_cores: null, pids_limit: 10, network: 'none' },
      idle_timeout_s: 0,
      created_at: '2026-01-01T00:00:00Z',
      last_active_at: '2026-01-01T00:00:01Z',
      stopped_reason: null,
    });
    expect(info.workingDir).toBe('/workspace');
    expect(info.limits).toEqual({ memoryMb: 64, cpuCores: null, pidsLimit: 10, network: 'none' });
    expect(info.lastActiveAt).toBe('2026-01-01T00:00:01Z');
  });

  it('reports an answer that breaks the protocol as invalid_response, naming the field', () => {
    try {
      resultFromWire({ id: 'x' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(FaasError);
      expect((err as FaasError).code).toBe('invalid_response');
      expect((err as FaasError).message).toContain('mode');
    }
  });
});

describe('client calls', () => {
  it('reject (never throw synchronously) on bad options, before any request', async () => {
    const { FaasClient } = await import('@faas/sdk');
    const client = new FaasClient({ baseUrl: 'http://127.0.0.1:1' });
    const p = client.execute({ command: 'x', cpuCores: -1 });
    expect(p).toBeInstanceOf(Promise);
    await expect(p).rejects.toMatchObject({ name: 'ValidationError', field: 'cpuCores', status: 0 });
    await expect(client.containers.exec('c1', { argv: [] })).rejects.toMatchObject({ name: 'ValidationError', field: 'argv' });
    await expect(client.containers.create({ idleTimeoutS: 1.5 })).rejects.toMatchObject({ name: 'ValidationError', field: 'idleTimeoutS' });
    await expect(client.stream('')).rejects.toMatchObject({ name: 'ValidationError', field: 'id' });
    expect(() => new FaasClient({ baseUrl: 'ftp://x' })).toThrow(ValidationError);
  });
});
