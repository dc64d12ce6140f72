/**
 * A real Prometheus (Debian's `prometheus` package) for the dashboards test:
 * scrapes static targets every second, evaluates rule files every second, and
 * takes new targets while it runs (config rewritten, SIGHUP, as
 * `kill -HUP` reloads a real one).
 */
import { execFileSync } from 'node:child_process'
import { accessSync, constants, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnLines, waitFor, type LineProcess } from '@pos-relay/testing'

export interface ScrapeTarget {
  job: string
  /** host:port */
  target: string
  /** the labels the chart's PodMonitor / ServiceMonitor would give its series in a cluster */
  labels: Record<string, string>
}

export interface Prometheus {
  url: string
  /** an instant query; its result vector */
  query: (expr: string) => Promise<any[]>
  /** scrapes these targets from now on (the config is rewritten and reloaded); resolves when every one is up */
  setTargets: (targets: ScrapeTarget[]) => Promise<void>
  stop: () => Promise<void>
}

export function prometheusBinary (): string {
  const isExec = (f: string): boolean => { try { accessSync(f, constants.X_OK); return true } catch { return false } }
  if (isExec('/usr/bin/prometheus')) return '/usr/bin/prometheus'
  if (process.getuid?.() !== 0) throw new Error('prometheus is not installed: apt-get install -y prometheus')
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  // Debian's package; no service is started (no systemd here, and policy-rc.d), we run the binary ourselves
  const install = (): void => { execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'prometheus'], { stdio: 'ignore', env }) }
  try { install() } catch { execFileSync('apt-get', ['update'], { stdio: 'ignore', env }); install() }
  if (!isExec('/usr/bin/prometheus')) throw new Error('installed prometheus but /usr/bin/prometheus is missing')
  return '/usr/bin/prometheus'
}

/** Starts Prometheus on `port` with its data in `dir`, the rule files given, scraping `targets`; resolves when all are up. */
export async function startPrometheus (opts: { dir: string, port: number, ruleFiles: string[], targets: ScrapeTarget[] }): Promise<Prometheus> {
  const url = `http://127.0.0.1:${opts.port}`
  const configFile = join(opts.dir, 'prometheus.yml')
  const writeConfig = (targets: ScrapeTarget[]): void => {
    writeFileSync(configFile, JSON.stringify({
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      rule_files: opts.ruleFiles,
      // one scrape config per job (Prometheus refuses two with one name), a static config per target
      scrape_configs: [...new Set(targets.map((t) => t.job))].map((job) => ({
        job_name: job,
        scrape_interval: '1s',
        scrape_timeout: '1s',
        static_configs: targets.filter((t) => t.job === job).map((t) => ({ targets: [t.target], labels: t.labels }))
      }))
    }, null, 2)) // JSON is YAML
  }
  const allUp = async (targets: ScrapeTarget[]): Promise<void> => {
    const want = new Set(targets.map((t) => t.target))
    await waitFor(async () => {
      const active = ((await (await fetch(`${url}/api/v1/targets`)).json()) as any).data.activeTargets as any[]
      return active.length === want.size && active.every((x) => want.has(x.discoveredLabels.__address__) && x.health === 'up')
    }, { timeoutMs: 30_000, message: 'every scrape target up' })
  }
  writeConfig(opts.targets)
  const proc: LineProcess = spawnLines(prometheusBinary(), [`--config.file=${configFile}`, `--storage.tsdb.path=${join(opts.dir, 'prom-data')}`,
    `--web.listen-address=127.0.0.1:${opts.port}`, '--storage.tsdb.retention.time=1h', '--log.level=warn'], { label: 'prometheus', keepStderr: 400 })
  await waitFor(async () => (await fetch(`${url}/-/ready`).catch(() => undefined))?.ok === true, { timeoutMs: 30_000, message: 'prometheus ready' })
  await allUp(opts.targets)
  return {
    url,
    async query (expr) {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`)
      const body = await res.json() as any
      if (body.status !== 'success') throw new Error(`${expr}: ${body.errorType}: ${body.error}`)
      return body.data.result
    },
    async setTargets (targets) {
      writeConfig(targets)
      proc.child.kill('SIGHUP')
      await allUp(targets)
    },
    async stop () { await proc.kill('SIGTERM', 5000) }
  }
}
