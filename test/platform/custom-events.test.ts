import { describe, expect, it } from 'vitest';
import { parseCustomEvent } from '../../src/platform/sandboxes.js';

describe('parseCustomEvent', () => {
  it('turns a JSON line into a custom event', () => {
    expect(parseCustomEvent('{"name":"metrics","data":{"loss":0.5}}')).toEqual({ type: 'custom', name: 'metrics', data: { loss: 0.5 } });
    expect(parseCustomEvent('{"name":"ping"}')).toEqual({ type: 'custom', name: 'ping', data: null });
  });

  it('reports anything else as an error event that quotes the line', () => {
    for (const line of ['not json', '{"data":1}', '[1,2]', '{"name":5}']) {
      const event = parseCustomEvent(line);
      expect(event).toMatchObject({ type: 'error', code: 'bad_custom_event' });
      expect((event as { message: string }).message).toContain(line);
    }
    const long = parseCustomEvent('x'.repeat(1000));
    expect((long as { message: string }).message.length).toBeLessThan(400);
  });
});
