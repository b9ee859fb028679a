/** Polling for conditions that other processes or timers make true. */

/**
 * Resolves once `check()` is true, checking every `everyMs`; rejects after `timeoutMs` with an error naming
 * `what` (and whatever `show()` tells about the state, e.g. a terminal's screen).
 */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000, show?: () => string, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${show ? `\n${show()}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
