/**
 * A full garbage collection at a moment of our choosing. V8 runs a major collection when its old generation has
 * grown enough; filling a warm pool allocates a lot (engine answers, agent connections), so the burst of
 * executions that usually follows a prewarm could meet one and stall for 10–35 ms on this class of machine.
 * Collecting just before a prewarm answers resets V8's trigger while nobody waits for an execution.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

type GcFunction = () => void;

let gcFunction: GcFunction | null | undefined;

/** V8's `gc()`, made available without `--expose-gc` on the command line (null where V8 refuses). */
function gcOf(): GcFunction | null {
  if (gcFunction !== undefined) return gcFunction;
  try {
    v8.setFlagsFromString('--expose-gc');
    gcFunction = vm.runInNewContext('gc') as GcFunction;
  } catch {
    gcFunction = null;
  }
  return gcFunction;
}

/** Runs a full collection now; false when V8 did not allow it. */
export function collectGarbage(): boolean {
  const gc = gcOf();
  if (!gc) return false;
  gc();
  return true;
}
