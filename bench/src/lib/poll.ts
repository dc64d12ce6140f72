/** Polls a synchronous check (a child's output lines, a ready file) every 50 ms until it yields a value. */
export async function waitForValue<T> (what: string, fn: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = fn()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** The lines of a child's output that are JSON objects (its events), parsed. */
export const jsonLines = (lines: string[]): any[] => lines.map((l) => { try { return JSON.parse(l) } catch { return undefined } }).filter((o) => o != null)
