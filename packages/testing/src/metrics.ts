/**
 * Reads one value from a Prometheus /metrics endpoint on loopback: the first
 * capture group of `pattern`, or 0 when the series is absent (a counter that
 * has not been incremented yet).
 */
export async function scrapeMetric (port: number, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  return Number(pattern.exec(text)?.[1] ?? 0)
}
