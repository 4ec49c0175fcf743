/** Summary of a set of latencies, ms. */
export interface LatencySummary {
  count: number;
  mean: number;
  min: number;
  max: number;
  p50: number;
  p95: number;
  p99: number;
}

/** Nearest-rank percentile `p` (0..100) of ascending-sorted values; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** Mean, extremes and p50/p95/p99 of latencies (ms); NaN fields when there are none. */
export function summarizeLatencies(values: readonly number[]): LatencySummary {
  const s = [...values].sort((a, b) => a - b);
  const sum = s.reduce((a, b) => a + b, 0);
  return {
    count: s.length,
    mean: s.length > 0 ? sum / s.length : Number.NaN,
    min: s.length > 0 ? s[0] : Number.NaN,
    max: s.length > 0 ? s[s.length - 1] : Number.NaN,
    p50: percentile(s, 50),
    p95: percentile(s, 95),
    p99: percentile(s, 99),
  };
}
