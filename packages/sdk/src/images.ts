/**
 * `client.images`: the images sandboxes can run (built-ins and templates), and user templates built from a
 * Dockerfile, with the build log streamed (NDJSON) to `onLog`.
 */
import { ImageBuildEvent, LIMITS } from '@faas/protocol';
import { FaasError, ValidationError, errorFromWire } from './errors.js';
import { readNdjsonBody, type Transport } from './http.js';
import { buildImageRequestToWire, imageFromWire, imageListFromWire, type BuildImageOptions, type ImageInfo } from './wire-admin.js';

const NDJSON = 'application/x-ndjson';
/** Default deadline of a build: as long as the gateway lets one run (then it answers why), plus a minute. */
export const DEFAULT_BUILD_TIMEOUT_MS = LIMITS.maxBuildMs + 60_000;

export interface BuildCallbacks {
  /** Called with each line of the build log as it arrives; the call then streams (NDJSON). */
  onLog?: (line: string) => void;
  /** Deadline of the whole build, in ms (default 31 minutes: the gateway cancels a build after 30; at least the client's `timeoutMs`). */
  timeoutMs?: number;
}

export class Images {
  constructor(private readonly transport: Transport) {}

  async list(): Promise<ImageInfo[]> {
    return imageListFromWire(await this.transport.json('GET', '/images'));
  }

  /**
   * Builds a template image from a Dockerfile and resolves to it. A failed build rejects with a typed error (its
   * message carries the builder's reason); with `onLog` the lines before the failure have been delivered.
   */
  async build(options: BuildImageOptions, callbacks: BuildCallbacks = {}): Promise<ImageInfo> {
    const body = buildImageRequestToWire(options);
    const { onLog } = callbacks;
    if (onLog !== undefined && typeof onLog !== 'function') throw new ValidationError('validation_error', 'invalid build option `onLog`: must be a function', { field: 'onLog' });
    const timeoutMs = callbacks.timeoutMs ?? Math.max(DEFAULT_BUILD_TIMEOUT_MS, this.transport.options.timeoutMs);
    if (!onLog) return imageFromWire(await this.transport.json('POST', '/images', { body, timeoutMs }));
    const { response } = await this.transport.send('POST', '/images', { body, timeoutMs, accept: NDJSON });
    if (!(response.headers.get('content-type') ?? '').includes(NDJSON)) {
      const text = await this.transport.readText(response, timeoutMs);
      try {
        return imageFromWire(JSON.parse(text));
      } catch (err) {
        if (err instanceof FaasError) throw err;
        throw new FaasError('invalid_response', 'the gateway answered an image build with neither NDJSON nor JSON');
      }
    }
    let done: ImageInfo | undefined;
    const handle = (value: unknown): void => {
      const parsed = ImageBuildEvent.safeParse(value);
      if (!parsed.success) return; // a line type newer than this SDK
      const event = parsed.data;
      if (event.type === 'log') onLog(event.line);
      else if (event.type === 'done') done = imageFromWire(event.image);
      else throw errorFromWire(0, { error: event.code, message: event.message });
    };
    await readNdjsonBody(response, this.transport, timeoutMs, handle, () => done !== undefined);
    if (!done) throw this.transport.lostError('the image build stream ended before its done event');
    return done;
  }

  /** Removes a template image (built-ins cannot be removed). */
  async delete(name: string): Promise<void> {
    if (typeof name !== 'string' || name === '') throw new ValidationError('validation_error', 'an image name is required', { field: 'name' });
    await this.transport.json('DELETE', `/images/${encodeURIComponent(name)}`);
  }
}
