/** Reading another process's memory and CPU time from Linux /proc. */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

let ticks: number | undefined

/** USER_HZ (clock ticks per second) that /proc/<pid>/stat times are counted in. */
function clockTicks (): number {
  if (ticks == null) {
    try { ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) } catch { ticks = 100 }
    if (!(ticks > 0)) ticks = 100
  }
  return ticks
}

export interface MemSample {
  /** resident set size now, MiB */
  rssMiB: number
  /** peak resident set size since start, MiB */
  hwmMiB: number
}

export function readMem (pid: number): MemSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)
    if (m == null) throw new Error(`/proc/${pid}/status has no ${key}`)
    return Number(m[1])
  }
  return { rssMiB: kib('VmRSS') / 1024, hwmMiB: kib('VmHWM') / 1024 }
}

export interface CpuSample { userS: number, systemS: number }

/** user and system (kernel) CPU seconds the process has used so far, all threads. */
export function readCpu (pid: number): CpuSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // the command name (field 2) may contain spaces: split after its closing paren
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // fields[0] is field 3 (state), so utime (14) and stime (15) are at 11 and 12
  return { userS: Number(fields[11]) / clockTicks(), systemS: Number(fields[12]) / clockTicks() }
}

/** user + system CPU seconds the process has used so far (all its threads). */
export function readCpuSeconds (pid: number): number {
  const { userS, systemS } = readCpu(pid)
  return userS + systemS
}
