/**
 * Shared shape of the benchmark suite. Every figure is reported next to a baseline measured in the same run, so
 * a noisy machine shifts both and the ratio stays meaningful.
 */
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
