/**
 * Image tag → immutable id, answered from memory while the engine's image events are being watched. Any image
 * event (tag, untag, delete, pull, load, import: a rebuild under the same tag emits `tag`) empties the memo, and
 * so does a broken event stream; until the stream is back every lookup inspects the image. So a cache hit
 * touches the engine neither for the image nor for anything else, and an image rebuilt under the same tag still
 * resolves to its new id (within the time the engine takes to report the event, a few milliseconds).
 */
import type Docker from 'dockerode';

export class ImageIdMemo {
  private readonly ids = new Map<string, string>();
  private live = false;
  private stream: NodeJS.ReadableStream | null = null;
  private retry: NodeJS.Timeout | null = null;
  private closed = false;
  /** Bumped on every invalidation so a lookup racing an event does not store a stale id. */
  private generation = 0;

  constructor(private readonly docker: Docker) {}

  /** The memoized id, or undefined (then inspect and `remember`). */
  get(image: string): { id: string | undefined; generation: number } {
    if (!this.live) this.start();
    return { id: this.live ? this.ids.get(image) : undefined, generation: this.generation };
  }

  remember(image: string, id: string, generation: number): void {
    if (this.live && generation === this.generation) this.ids.set(image, id);
  }

  private invalidate(): void {
    this.generation++;
    this.ids.clear();
  }

  private start(): void {
    if (this.closed || this.stream || this.retry) return;
    this.docker.getEvents({ filters: { type: ['image'] } }, (err, stream) => {
      if (err || !stream || this.closed) {
        if (stream && this.closed) (stream as unknown as { destroy?: () => void }).destroy?.();
        this.scheduleRetry();
        return;
      }
      this.stream = stream;
      this.invalidate();
      this.live = true;
      stream.on('data', () => this.invalidate());
      const down = () => {
        if (this.stream !== stream) return;
        this.stream = null;
        this.live = false;
        this.invalidate();
        this.scheduleRetry();
      };
      stream.on('error', down);
      stream.on('end', down);
      stream.on('close', down);
    });
  }

  private scheduleRetry(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      this.start();
    }, 1000);
    this.retry.unref();
  }

  close(): void {
    this.closed = true;
    this.live = false;
    if (this.retry) clearTimeout(this.retry);
    const s = this.stream as unknown as { destroy?: () => void } | null;
    this.stream = null;
    s?.destroy?.();
    this.ids.clear();
  }
}
