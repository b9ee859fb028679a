/**
 * Shared shape of the benchmark suite. Every figure is reported next to a baseline measured in the same run, so
 * a noisy machine shifts both and the ratio stays meaningful.
 */
import fs from 'node:fs';

export interface BenchRow {
  suite: string;
  name: string;
  unit: string;
  /** The headline number (p50 for latencies). */
  value: number;
  p50?: number;
  p95?: number;
  p99?: number;
  baseline?: { name: string; value: number };
  /** value / baseline.value */
  ratio?: number;
  goal?: string;
  /** Did the value meet its goal, when there is one. */
  met?: boolean;
  note?: string;
}

export interface BenchOptions {
  quick: boolean;
  /** A scratch folder the suite may fill and must clean. */
  workDir: string;
}

export interface BenchSuite {
  name: string;
  run(opts: BenchOptions): Promise<BenchRow[]>;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

export function summarize(samples: number[]): { p50: number; p95: number; p99: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99) };
}

/** Busy share of all CPUs over `ms`, from /proc/stat (null where there is none). */
async function cpuBusy(ms: number): Promise<number | null> {
  const read = (): number[] | null => {
    try {
      const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
      return line.trim().split(/\s+/).slice(1).map(Number);
    } catch {
      return null;
    }
  };
  const a = read();
  await new Promise((r) => setTimeout(r, ms));
  const b = read();
  if (!a || !b) return null;
  const delta = b.map((v, i) => v - (a[i] ?? 0));
  const total = delta.reduce((x, y) => x + y, 0);
  const idle = (delta[3] ?? 0) + (delta[4] ?? 0); // idle + iowait
  return total > 0 ? 1 - idle / total : null;
}

/**
 * Waits until the machine is quiet (under 15% of all CPUs busy for a second), at most `maxMs`: a suite that removed
 * hundreds of sandboxes leaves the engine and the kernel busy for a while (unmounts, discards, writeback), which
 * the next suite would otherwise measure as its own. Returns how long it waited.
 */
export async function settleMachine(maxMs = 60_000): Promise<{ waitedMs: number; busy: number | null }> {
  const started = performance.now();
  let busy: number | null = null;
  while (performance.now() - started < maxMs) {
    busy = await cpuBusy(1000);
    if (busy === null || busy < 0.15) break;
  }
  return { waitedMs: performance.now() - started, busy };
}
