// Generates charts/pos-relay/dashboards/*.json, the dashboards the chart ships
// (templates/dashboards.yaml), from their typed definitions in dashboards/
// (Grafana's Foundation SDK). The JSON is committed; e2e/test/dashboards.test.ts
// fails when it drifts. Run: npx node charts/pos-relay/hack/dashboards.ts [out-dir]
// Every PromQL expression must return data against a real Prometheus scraping a
// relay, discovery and the operator (e2e/kube/test/dashboards.test.ts).
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { fleetDashboard } from './dashboards/fleet.ts'
import { operatorDashboard } from './dashboards/operator.ts'

/** file name → dashboard; the names and the UIDs in them are what users' links and provisioning know: keep them */
export function dashboards (): Record<string, unknown> {
  return { 'fleet-overview.json': fleetDashboard(), 'operator.json': operatorDashboard() }
}

export function render (d: unknown): string {
  return JSON.stringify(d, null, 2) + '\n'
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] ?? fileURLToPath(new URL('../dashboards', import.meta.url))
  for (const [file, d] of Object.entries(dashboards())) writeFileSync(`${out}/${file}`, render(d))
}
