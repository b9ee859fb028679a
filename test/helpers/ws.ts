/** A WebSocket test client that collects events and waits for the one a test expects. */
import WebSocket from 'ws';
import type { StreamCommand, StreamEvent } from '@faas/protocol';

export class TestStream {
  readonly events: StreamEvent[] = [];
  private waiters: Array<{ match: (e: StreamEvent) => boolean; resolve: (e: StreamEvent) => void }> = [];
  closed: { code: number; reason: string } | null = null;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (raw) => {
      const event = JSON.parse(raw.toString()) as StreamEvent;
      this.events.push(event);
      this.waiters = this.waiters.filter((w) => {
        if (!w.match(event)) return true;
        w.resolve(event);
        return false;
      });
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
    });
  }

  static open(baseUrl: string, sandboxId: string, query = ''): Promise<TestStream> {
    const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/api/v1/containers/${sandboxId}/stream${query}`);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new TestStream(ws)));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused with ${res.statusCode}`)));
    });
  }

  send(command: StreamCommand | Record<string, unknown> | string): void {
    this.ws.send(typeof command === 'string' ? command : JSON.stringify(command));
  }

  /** Resolves with the first event (already received or future) that matches. */
  waitFor<T extends StreamEvent = StreamEvent>(match: (e: StreamEvent) => boolean, timeoutMs = 10_000, what = 'event'): Promise<T> {
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen as T);
    return new Promise((resolve, reject) => {
      const recent = this.events.slice(-10).map((e) => JSON.stringify(e).slice(0, 200));
      const timer = setTimeout(
        () => reject(new Error(`no ${what} within ${timeoutMs} ms; closed: ${JSON.stringify(this.closed)}; ${this.events.length} events, last: ${recent.join(' ')}`)),
        timeoutMs,
      );
      this.waiters.push({
        match,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e as T);
        },
      });
    });
  }

  of<T extends StreamEvent['type']>(type: T, execId?: string): Array<Extract<StreamEvent, { type: T }>> {
    return this.events.filter((e) => e.type === type && (execId === undefined || (e as { exec_id?: string }).exec_id === execId)) as Array<Extract<StreamEvent, { type: T }>>;
  }

  stdout(execId: string): string {
    return this.of('stdout', execId).map((e) => e.data).join('');
  }

  close(): void {
    this.ws.close();
  }
}
