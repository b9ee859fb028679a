/** Turns dockerode's errors into messages that say which engine failed, doing what. */
import { RUNNABLE_IMAGE, RUNNABLE_IMAGE_MESSAGE } from '@faas/protocol';
import { FaasError, errorMessage } from '../../errors.js';

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

export function isNotFound(err: unknown): boolean {
  return (err as { statusCode?: number }).statusCode === 404;
}

export function isEngineUnreachable(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return (code !== undefined && UNREACHABLE.has(code)) || /socket hang up|timeout/i.test(errorMessage(err));
}

export function engineError(err: unknown, where: string, doing?: string): FaasError {
  if (err instanceof FaasError) return err;
  const what = doing ? ` while ${doing}` : '';
  if (isEngineUnreachable(err)) {
    return new FaasError('engine_unavailable', `${where} cannot be reached${what}: ${errorMessage(err)}; is dockerd running?`, undefined, 5);
  }
  const message = errorMessage(err).replace(/^\(HTTP code \d+\)\s*(unexpected - )?/, '');
  return new FaasError('internal_error', `${where} failed${what}: ${message}`);
}

/**
 * Refuses a name that is no image reference before it reaches the engine: the engine redirects a name with `..`
 * segments, and the engine client's handling of that redirect crashed the process.
 */
export function checkImageName(image: string, field = 'image'): void {
  if (!RUNNABLE_IMAGE.test(image)) throw new FaasError('validation_error', `${RUNNABLE_IMAGE_MESSAGE}, not ${JSON.stringify(image)}`, field);
}
