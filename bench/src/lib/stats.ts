/** Nearest-rank percentile (p in 0..100) of unsorted samples. */
export function percentile (samples: number[], p: number): number {
  if (samples.length === 0) return NaN
  const sorted = [...samples].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!
}

/** Median (mean of the two middle values for an even count). */
export function median (samples: number[]): number {
  if (samples.length === 0) return NaN
  const s = [...samples].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export function mean (samples: number[]): number {
  return samples.length === 0 ? NaN : samples.reduce((a, b) => a + b, 0) / samples.length
}

export interface Summary { n: number, p50: number, p99: number, mean: number, min: number, max: number }

export function summarize (samples: number[]): Summary {
  return {
    n: samples.length,
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    mean: mean(samples),
    min: Math.min(...samples),
    max: Math.max(...samples)
  }
}
