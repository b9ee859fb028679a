// Property-based fuzzing of the REST bodies and WebSocket commands: whatever arrives, the answer is a 4xx with a
// JSON error or a normal answer — never a 5xx, never a crash, never a hung connection.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { TestStream } from '../helpers/ws.js';

let gw: TestGateway;
let sandboxId: string;

beforeAll(async () => {
  gw = await startTestGateway();
  sandboxId = (await api(gw.url, 'POST', '/api/v1/containers', {})).body.id;
});
afterAll(async () => {
  await gw?.close();
});

const FIELDS = ['command', 'argv', 'mode', 'image', 'env', 'working_dir', 'stdin', 'timeout_ms', 'memory_mb', 'cpu_cores', 'pids_limit', 'network', 'idle_timeout_s', 'count', 'read_only', 'name', 'quotas'];

/** Values of every JSON type, with the awkward ones (huge, negative, fractional, empty, nested) over-represented. */
const jsonValue = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1.5, 1e308, -1e308, Number.MAX_SAFE_INTEGER, '', ' ', '\u0000', 'ls', '/', 'faas/busybox:latest', 'bridge', 'ephemeral', 'persistent', 'cached'),
  fc.integer(),
  fc.double({ noNaN: true }),
  fc.string({ maxLength: 40 }),
  fc.array(fc.string({ maxLength: 8 }), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(fc.string({ maxLength: 6 }), fc.integer()), { maxKeys: 3 }),
);

/** Bodies built from real field names (so validation goes deep) and junk ones, or not objects at all. */
const body = fc.oneof(
  { weight: 5, arbitrary: fc.dictionary(fc.oneof(fc.constantFrom(...FIELDS), fc.string({ maxLength: 10 })), jsonValue, { maxKeys: 5 }) },
  { weight: 1, arbitrary: jsonValue },
);

/**
 * Keeps generated bodies from starting real work while still going through all of validation: a body that
 * passes gets stopped later, at an invalid timeout (commands) or a missing image (sandboxes, pools).
 */
type Defang = (value: Record<string, unknown>) => Record<string, unknown>;
const badTimeout: Defang = (v) => ({ ...v, timeout_ms: -1 });
const missingImage: Defang = (v) => ({ ...v, image: 'faas/fuzz-missing:none' });
const asIs: Defang = (v) => v;

const ROUTES: Array<[string, () => string, Defang]> = [
  ['POST', () => '/api/v1/execute', badTimeout],
  ['POST', () => '/api/v1/containers', missingImage],
  ['POST', () => `/api/v1/containers/${sandboxId}/exec`, badTimeout],
  ['POST', () => '/api/v1/prewarm', missingImage],
  ['POST', () => '/api/v1/tenants', asIs],
];

function defang(value: unknown, how: Defang): unknown {
  return value && typeof value === 'object' && !Array.isArray(value) ? how(value as Record<string, unknown>) : value;
}

describe('fuzzing', () => {
  it('REST bodies never get a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ROUTES), body, async ([method, path, how], raw) => {
        const res = await api(gw.url, method, path(), defang(raw, how));
        expect(res.status, JSON.stringify({ path: path(), raw, answer: res.body })).toBeLessThan(500);
        if (res.status >= 400) {
          expect(typeof res.body.error).toBe('string');
          expect(typeof res.body.message).toBe('string');
        }
      }),
      { numRuns: 300 },
    );
  });

  it('bytes that are not JSON never get a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ROUTES), fc.string({ maxLength: 60 }), async ([method, path], text) => {
        const res = await api(gw.url, method, path(), text.length ? text : '{');
        expect(res.status).toBeLessThan(500);
      }),
      { numRuns: 150 },
    );
  });

  it('WebSocket commands get an error event or an answer, and the stream stays usable', async () => {
    const s = await TestStream.open(gw.url, sandboxId);
    const commands = fc.oneof(
      fc.string({ maxLength: 50 }),
      body.map((b) => JSON.stringify(b && typeof b === 'object' && !Array.isArray(b) ? { type: 'exec', ...b, command: undefined } : b)),
      fc.record({ type: fc.constantFrom('stdin', 'signal', 'resize', 'get_state', 'checkpoint', 'nope'), exec_id: fc.string({ maxLength: 5 }), data: jsonValue, signal: jsonValue, cols: jsonValue, rows: jsonValue }).map((c) => JSON.stringify(c)),
    );
    await fc.assert(
      fc.asyncProperty(commands, async (text) => {
        s.send(text);
      }),
      { numRuns: 300 },
    );
    s.send({ type: 'exec', command: 'echo survived', exec_id: 'after-fuzz' });
    await s.waitFor((e) => e.type === 'exit' && e.exec_id === 'after-fuzz', 20_000);
    expect(s.stdout('after-fuzz')).toBe('survived\n');
    expect(s.closed).toBeNull();
    expect(s.of('error').every((e) => typeof e.message === 'string' && e.code !== 'internal_error')).toBe(true);
    s.close();
    expect((await api(gw.url, 'GET', '/health')).status).toBe(200);
  });
});
