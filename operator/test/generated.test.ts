/**
 * Drift test: every file generated from the RelayPool schema
 * (operator/src/schema/relaypool.ts) is exactly what operator/hack/generate.ts
 * writes now. On failure: `npm run generate:crd` and commit the result.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { parse } from 'yaml'
import { CHART_CRD_FILE, CRD_FILE, README_FILE, render, ROOT, SETTINGS_FILE, TYPES_FILE } from '../hack/generate.ts'

describe('files generated from the RelayPool schema', () => {
  const files = render()

  it('covers the CRD, the chart\'s copy, the types, the relay settings and the README', () => {
    assert.deepEqual(Object.keys(files).sort(), [CRD_FILE, CHART_CRD_FILE, TYPES_FILE, SETTINGS_FILE, README_FILE].sort())
  })

  for (const [path, content] of Object.entries(files)) {
    it(`${path} is up to date (else: npm run generate:crd)`, () => {
      const onDisk = readFileSync(ROOT + path, 'utf8')
      assert.ok(onDisk === content, `${path} differs from what operator/hack/generate.ts writes: run \`npm run generate:crd\``)
    })
  }

  it('the CRD has a scale subresource on spec.replicas, status.replicas and status.selector', () => {
    const crd = parse(files[CRD_FILE]!)
    const version = crd.spec.versions[0]
    assert.deepEqual(version.subresources.scale, { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' })
    const status = version.schema.openAPIV3Schema.properties.status.properties
    assert.equal(status.replicas.type, 'integer')
    assert.equal(status.selector.type, 'string')
  })

  it('plain ranges are minimum/maximum, not CEL', () => {
    const crd = parse(files[CRD_FILE]!)
    const rules: string[] = []
    const walk = (p: any): void => {
      for (const r of p['x-kubernetes-validations'] ?? []) rules.push(r.rule)
      for (const v of Object.values<any>(p.properties ?? {})) walk(v)
      if (p.items != null) walk(p.items)
    }
    walk(crd.spec.versions[0].schema.openAPIV3Schema)
    // a rule of the form `self.x >= A && self.x <= B` is a plain range
    for (const r of rules) assert.doesNotMatch(r, /^(!has\(self\.\w+\) \|\| )?\(?self(\.\w+)? >= \d+ && self(\.\w+)? <= \d+\)?$/, r)
  })
})
