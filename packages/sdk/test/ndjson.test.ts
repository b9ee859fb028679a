import { describe, expect, it } from 'vitest';
import { FaasError, NdjsonDecoder, toStreamEvent } from '@faas/sdk';

const enc = (s: string) => new TextEncoder().encode(s);

describe('NDJSON line splitting', () => {
  it('joins lines split across chunks', () => {
    const d = new NdjsonDecoder();
    expect(d.push(enc('{"type":"std'))).toEqual([]);
    expect(d.push(enc('out","data":"a"}\n{"type":"stdout",'))).toEqual([{ type: 'stdout', data: 'a' }]);
    expect(d.push(enc('"data":"b"}\n\n{"type":"exit","code":0}\n'))).toEqual([
      { type: 'stdout', data: 'b' },
      { type: 'exit', code: 0 },
    ]);
    expect(d.end()).toEqual([]);
  });

  it('keeps a UTF-8 character split between chunks intact', () => {
    const bytes = enc('{"type":"stdout","data":"é€😀"}\n');
    const d = new NdjsonDecoder();
    const out: unknown[] = [];
    for (let i = 0; i < bytes.length; i++) out.push(...d.push(bytes.subarray(i, i + 1)));
    expect(out).toEqual([{ type: 'stdout', data: 'é€😀' }]);
  });

  it('accepts CRLF and a last line without newline', () => {
    const d = new NdjsonDecoder();
    expect(d.push('{"a":1}\r\n{"b":2}')).toEqual([{ a: 1 }]);
    expect(d.end()).toEqual([{ b: 2 }]);
  });

  it('fails on a line that is not JSON', () => {
    const d = new NdjsonDecoder();
    expect(() => d.push('not json\n')).toThrow(FaasError);
  });
});

describe('stream events', () => {
  it('checks events against the protocol', () => {
    expect(toStreamEvent({ type: 'exit', code: 3, exec_id: 'x' })).toEqual({ type: 'exit', code: 3, exec_id: 'x' });
    expect(() => toStreamEvent({ type: 'exit', code: 'three' })).toThrow(/does not match/);
  });

  it('skips event types newer than the SDK', () => {
    expect(toStreamEvent({ type: 'future_event', x: 1 })).toBeUndefined();
  });
});
