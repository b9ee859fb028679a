import { describe, expect, it } from 'vitest';
import { api, useTestGateway } from '../helpers/gateway.js';
import { TestStream } from '../helpers/ws.js';

const gw = useTestGateway({ env: { FAAS_IDLE_CHECK_MS: '200' } });

const seqOf = (e: { seq?: number }) => e.seq ?? -1;

describe('reconnecting streams', () => {
  it('a client that reconnects with since= gets what it missed, in order, without duplicates, and its processes kept running', async () => {
    const id = (await api(gw.url, 'POST', '/api/v1/containers', {})).body.id;
    const first = await TestStream.open(gw.url, id);
    first.send({ type: 'exec', command: 'for i in 1 2 3 4 5 6; do echo tick$i; sleep 0.2; done', exec_id: 'ticker' });
    await first.waitFor((e) => e.type === 'stdout' && e.exec_id === 'ticker');
    const seen = Math.max(...first.events.map(seqOf));
    const seenText = first.stdout('ticker');
    first.close();
    // The process goes on while nobody watches.
    await new Promise((r) => setTimeout(r, 700));
    const second = await TestStream.open(gw.url, id, `?since=${seen}`);
    await second.waitFor((e) => e.type === 'exit' && e.exec_id === 'ticker', 5000);
    const seqs = second.events.filter((e) => e.type !== 'heartbeat').map(seqOf);
    expect(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!)).toBe(true);
    expect(Math.min(...seqs)).toBe(seen + 1);
    expect(seenText + second.stdout('ticker')).toBe('tick1\ntick2\ntick3\ntick4\ntick5\ntick6\n');
    second.close();
    await api(gw.url, 'DELETE', `/api/v1/containers/${id}`);
  });

  it('says when the events asked for are no longer kept', async () => {
    const id = (await api(gw.url, 'POST', '/api/v1/containers', {})).body.id;
    await api(gw.url, 'POST', `/api/v1/containers/${id}/exec`, { command: 'head -c 12000000 /dev/zero | tr "\\0" y' });
    const late = await TestStream.open(gw.url, id, '?since=0');
    const gap = await late.waitFor((e) => e.type === 'error');
    expect(gap).toMatchObject({ code: 'replay_gap' });
    late.close();
    await api(gw.url, 'DELETE', `/api/v1/containers/${id}`);
  });

  it('rejects a since that is not a sequence number', async () => {
    const id = (await api(gw.url, 'POST', '/api/v1/containers', {})).body.id;
    await expect(TestStream.open(gw.url, id, '?since=yesterday')).rejects.toThrow(/400/);
    // The same answer over plain HTTP says what since must be, not "received NaN".
    for (const query of ['?since=yesterday', '?since=-1', '?since=0&since=1']) {
      const res = await api(gw.url, 'GET', `/api/v1/containers/${id}/stream${query}`);
      expect(res.status, query).toBe(400);
      expect(res.body).toMatchObject({ error: 'validation_error', field: 'since' });
      expect(res.body.message, query).toMatch(/seq of the last event you received/);
    }
    await api(gw.url, 'DELETE', `/api/v1/containers/${id}`);
  });
});

describe('lifecycle events', () => {
  it('are recorded and shown on the sandbox: created, exec killed by timeout or OOM, stopped for idleness', async () => {
    const id = (await api(gw.url, 'POST', '/api/v1/containers', { idle_timeout_s: 1, memory_mb: 48 })).body.id;
    await api(gw.url, 'POST', `/api/v1/containers/${id}/exec`, { command: 'sleep 10', timeout_ms: 200 });
    const oom = await api(gw.url, 'POST', `/api/v1/containers/${id}/exec`, { command: 'x=a; while true; do x="$x$x"; done', timeout_ms: 20_000 });
    expect(oom.body.oom_killed).toBe(true);
    let sandbox = (await api(gw.url, 'GET', `/api/v1/containers/${id}`)).body;
    for (let i = 0; i < 50 && sandbox.status === 'running'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      sandbox = (await api(gw.url, 'GET', `/api/v1/containers/${id}`)).body;
    }
    expect(sandbox.lifecycle.map((e: { event: string }) => e.event)).toEqual(['created', 'exec_timed_out', 'exec_oom_killed', 'stopped']);
    expect(sandbox.lifecycle[3].detail).toEqual({ reason: 'idle' });
    expect(sandbox.lifecycle[1].detail).toMatchObject({ timeout_ms: 200 });
    await api(gw.url, 'DELETE', `/api/v1/containers/${id}`);
  });
});
