import { pollUntil } from '@pos-relay/testing'

/** pollUntil of a synchronous check (a child's output lines, a ready file), every 50 ms */
export async function waitForValue<T> (what: string, fn: () => T | undefined, timeoutMs: number): Promise<T> {
  return await pollUntil(what, fn, { timeoutMs, intervalMs: 50 })
}

/** The lines of a child's output that are JSON objects (its events), parsed. */
export const jsonLines = (lines: string[]): any[] => lines.map((l) => { try { return JSON.parse(l) } catch { return undefined } }).filter((o) => o != null)
