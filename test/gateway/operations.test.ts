import { describe, expect, it } from 'vitest';
import { OPERATIONS } from '../../src/gateway/openapi.js';
import { api, startTestGateway, useTestGateway } from '../helpers/gateway.js';

const gw = useTestGateway();

describe('operations', () => {
  it('health probes the engine', async () => {
    const res = await api(gw.url, 'GET', '/health');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'ok', runtime: 'docker', engine: { reachable: true } });
  });

  it('health is 503 when the engine cannot be reached, and requests fail fast with a clear error', async () => {
    const down = await startTestGateway({ env: { FAAS_DOCKER_SOCKET: '/nonexistent/docker.sock' } });
    try {
      const res = await api(down.url, 'GET', '/health');
      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({ status: 'unavailable', engine: { reachable: false } });
      const exec = await api(down.url, 'POST', '/api/v1/execute', { command: 'echo' });
      expect(exec.status).toBe(503);
      expect(exec.body.error).toBe('engine_unavailable');
      expect(exec.body.message).toContain('/nonexistent/docker.sock');
    } finally {
      await down.close();
    }
  });

  it('serves Prometheus metrics that count executions', async () => {
    await api(gw.url, 'POST', '/api/v1/execute', { command: 'exit 1' });
    const res = await fetch(`${gw.url}/metrics`);
    const text = await res.text();
    expect(res.headers.get('content-type')).toContain('text/plain');
    expect(text).toMatch(/faas_executions_total\{mode="ephemeral",outcome="error"\} 1/);
    expect(text).toContain('faas_execution_duration_seconds_bucket');
    expect(text).toContain('faas_sandboxes_live');
  });

  it('documents every route it serves in OpenAPI, and nothing else', async () => {
    const res = await api(gw.url, 'GET', '/api/v1/openapi.json');
    expect(res.body.openapi).toBe('3.1.0');
    const documented = new Set(Object.entries(res.body.paths as Record<string, object>).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)));
    const served = new Set<string>();
    for (const line of gw.gateway.app.printRoutes({ commonPrefix: false }).split('\n')) void line;
    for (const op of OPERATIONS) {
      const url = op.path.replace(/\{(\w+)\}/g, ':$1');
      if (gw.gateway.app.hasRoute({ method: op.method.toUpperCase() as 'GET', url })) served.add(`${op.method.toUpperCase()} ${op.path}`);
    }
    expect(served).toEqual(documented);
    const execute = res.body.paths['/api/v1/execute'].post;
    expect(execute.requestBody.content['application/json'].schema.properties).toHaveProperty('timeout_ms');
    expect(execute.responses['400'].description).toContain('validation_error');
  });
});
