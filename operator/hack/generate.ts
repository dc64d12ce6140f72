/**
 * Writes everything that derives from the RelayPool schema
 * (operator/src/schema/relaypool.ts): the CRD YAML in crds/ and its copy in
 * the chart, the TypeScript types, the relay flag table, and the generated
 * sections of crds/README.md.
 *
 *   npm run generate:crd        (builds, then runs this file)
 *
 * render() is also what operator/test/generated.test.ts compares the files
 * in the repository with.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { stringify } from 'yaml'
import { RELAYPOOL_CRD } from '../dist/schema/relaypool.js'
import type { CrdSource, Prop } from '../dist/schema/define.js'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const SOURCE = 'operator/src/schema/relaypool.ts'
const DO_NOT_EDIT = `Generated from ${SOURCE} by \`npm run generate:crd\`: do not edit.`

export const CRD_FILE = 'crds/relaypools.pos-relay.io.yaml'
export const CHART_CRD_FILE = 'charts/pos-relay/files/crds/relaypools.pos-relay.io.yaml'
export const TYPES_FILE = 'operator/src/generated/relaypool.ts'
export const SETTINGS_FILE = 'operator/src/generated/relay-settings.ts'
export const README_FILE = 'crds/README.md'

// ------------------------------------------------------------------ CRD

/** a Prop as OpenAPI v3 (the keys the API server knows, in a readable order) */
export function openApi (p: Prop): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  const put = (k: string, v: unknown): void => { if (v !== undefined) out[k] = v }
  put('type', p.type)
  put('format', p.format)
  put('description', p.description)
  put('default', p.default)
  put('minimum', p.minimum)
  put('maximum', p.maximum)
  put('minLength', p.minLength)
  put('maxLength', p.maxLength)
  put('maxItems', p.maxItems)
  put('maxProperties', p.maxProperties)
  put('enum', p.enum)
  put('required', p.required)
  put('x-kubernetes-list-type', p.listType)
  put('x-kubernetes-list-map-keys', p.listMapKeys)
  put('x-kubernetes-preserve-unknown-fields', p.preserveUnknownFields)
  put('anyOf', p.anyOf?.map(openApi))
  put('pattern', p.pattern)
  put('x-kubernetes-int-or-string', p.intOrString)
  put('x-kubernetes-validations', p.rules?.map((r) => ({ rule: r.rule, message: r.message })))
  put('additionalProperties', p.additionalProperties != null ? openApi(p.additionalProperties) : undefined)
  put('items', p.items != null ? openApi(p.items) : undefined)
  if (p.properties != null) out.properties = Object.fromEntries(Object.entries(p.properties).map(([k, v]) => [k, openApi(v)]))
  return out
}

export function renderCrd (s: CrdSource): string {
  const crd = {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${s.plural}.${s.group}`, labels: s.labels },
    spec: {
      group: s.group,
      scope: 'Namespaced',
      names: { kind: s.kind, listKind: s.listKind, plural: s.plural, singular: s.singular, shortNames: s.shortNames, categories: s.categories },
      versions: [{
        name: s.version,
        served: true,
        storage: true,
        subresources: { status: {}, scale: s.scale },
        additionalPrinterColumns: s.printerColumns,
        schema: { openAPIV3Schema: openApi(s.root) }
      }]
    }
  }
  return s.header.map((l) => `# ${l}`).join('\n') + '\n' + stringify(crd, { lineWidth: 110, minContentWidth: 40 })
}

// ------------------------------------------------------------------ TypeScript types

function tsDoc (p: Prop, indent: string): string {
  const lines: string[] = []
  if (p.description != null) lines.push(p.description)
  const range = rangeText(p)
  if (range != null) lines.push(`Range: ${range}.`)
  if (p.default !== undefined) lines.push(`Default: ${JSON.stringify(p.default)}.`)
  if (lines.length === 0) return ''
  return `${indent}/** ${lines.join(' ').replace(/\*\//g, '*\\/')} */\n`
}

class TypeEmitter {
  readonly named = new Map<string, string>()

  typeOf (p: Prop, indent: string): string {
    if (p.tsType != null) return p.tsType
    if (p.tsName != null) { this.declareNamed(p); return p.tsName }
    return this.inline(p, indent)
  }

  private inline (p: Prop, indent: string): string {
    if (p.enum != null) return p.enum.map((v) => typeof v === 'string' ? `'${v}'` : String(v)).join(' | ')
    if (p.intOrString === true && p.type == null) return 'number | string'
    switch (p.type) {
      case 'integer': case 'number': return 'number'
      case 'string': return 'string'
      case 'boolean': return 'boolean'
      case 'array': return `Array<${this.typeOf(p.items ?? {}, indent)}>`
      case 'object':
        if (p.properties != null) return this.objectBody(p, indent)
        if (p.additionalProperties != null) return `Record<string, ${this.typeOf(p.additionalProperties, indent)}>`
        return 'Record<string, unknown>'
      default: return 'unknown'
    }
  }

  private objectBody (p: Prop, indent: string): string {
    const inner = indent + '  '
    const required = new Set(p.required ?? [])
    const fields = Object.entries(p.properties ?? {}).map(([k, v]) => `${tsDoc(v, inner)}${inner}${k}${required.has(k) ? '' : '?'}: ${this.typeOf(v, inner)}\n`)
    return `{\n${fields.join('')}${indent}}`
  }

  private declareNamed (p: Prop): void {
    const name = p.tsName!
    if (this.named.has(name)) return
    this.named.set(name, '') // reserve: recursion and a second use of the same shape
    const doc = p.description != null ? `/** ${p.description} */\n` : ''
    const body = p.type === 'object' ? `${doc}export interface ${name} ${this.objectBody(p, '')}\n` : `${doc}export type ${name} = ${this.inline(p, '')}\n`
    this.named.set(name, body)
  }
}

export function renderTypes (s: CrdSource): string {
  const e = new TypeEmitter()
  e.typeOf(s.root.properties!.spec!, '')
  e.typeOf(s.root.properties!.status!, '')
  return [
    `// ${DO_NOT_EDIT}`,
    `// The ${s.kind} API (${s.group}/${s.version}) as TypeScript: what the API server stores, defaults already applied.`,
    `import type { ${s.tsImports.join(', ')} } from '@kubernetes/client-node'`,
    '',
    [...e.named.values()].join('\n').trimEnd(),
    ''
  ].join('\n')
}

// ------------------------------------------------------------------ relay settings

export interface SettingRow { path: string[], prop: Prop }

export function relaySettingRows (s: CrdSource): SettingRow[] {
  const rows: SettingRow[] = []
  const walk = (p: Prop, path: string[]): void => {
    if (p.relay != null) rows.push({ path, prop: p })
    for (const [k, v] of Object.entries(p.properties ?? {})) walk(v, [...path, k])
  }
  walk(s.root.properties!.spec!, [])
  return rows
}

export function renderSettings (s: CrdSource): string {
  const rows = relaySettingRows(s).map(({ path, prop }) => {
    const access = 'spec.' + path.join('?.')
    const fields = [
      `field: '${path.join('.')}'`,
      `flag: '${prop.relay!.flag}'`,
      `config: '${prop.relay!.config}'`,
      `minimum: ${prop.zeroOr ?? prop.minimum}`,
      `maximum: ${prop.maximum}`,
      `zeroToo: ${prop.zeroOr != null}`,
      `reloadable: ${prop.relay!.reloadable === true}`,
      ...(prop.default !== undefined ? [`default: ${JSON.stringify(prop.default)}`] : []),
      `description: ${JSON.stringify(prop.description ?? '')}`,
      `value: (spec) => ${access}`
    ]
    return `  {\n    ${fields.join(',\n    ')}\n  }`
  })
  return [
    `// ${DO_NOT_EDIT}`,
    '// Each RelayPool spec field that reaches the relays, with the `pos-relay run` flag it is',
    '// passed as and the relay config key that flag sets. The operator renders the flags from',
    '// this table (manifests.ts relayArgs); operator/test/crd-limits.test.ts checks it against',
    '// the relay\'s config schema and the CLI\'s options.',
    'import type { RelayPoolSpec } from \'./relaypool.js\'',
    '',
    'export interface RelaySetting {',
    '  /** path in the spec, dotted */',
    '  field: string',
    '  /** flag of `pos-relay run` */',
    '  flag: string',
    '  /** relay config key the flag sets */',
    '  config: string',
    '  /** smallest value the CRD accepts besides 0 when zeroToo */',
    '  minimum: number',
    '  maximum: number',
    '  /** 0 is accepted too (a documented "off" or "unlimited") */',
    '  zeroToo: boolean',
    '  /** applied by running relays: written into the pool\'s limits ConfigMap, not passed as a flag (a change restarts no relay) */',
    '  reloadable: boolean',
    '  /** the CRD default (the API server fills it in) */',
    '  default?: number',
    '  description: string',
    '  value: (spec: RelayPoolSpec) => number | undefined',
    '}',
    '',
    'export const RELAY_SETTINGS: readonly RelaySetting[] = [',
    rows.join(',\n'),
    ']',
    ''
  ].join('\n')
}

// ------------------------------------------------------------------ README

const fmtNum = (n: number): string => String(n)

export function rangeText (p: Prop): string | undefined {
  if (p.maximum == null && p.minimum == null) return undefined
  const lo = p.zeroOr ?? p.minimum
  const span = lo != null && p.maximum != null ? `${fmtNum(lo)}–${fmtNum(p.maximum)}` : lo != null ? `≥ ${fmtNum(lo)}` : `≤ ${fmtNum(p.maximum!)}`
  return p.zeroOr != null ? `0 or ${span}` : span
}

function docType (p: Prop): string {
  if (p.doc?.type != null) return p.doc.type
  if (p.enum != null) return p.enum.map((v) => `\`${String(v)}\``).join('/')
  if (p.type === 'integer') return p.format === 'int64' ? 'int64' : 'int'
  if (p.type === 'boolean') return 'bool'
  return p.type ?? 'any'
}

function docDefault (p: Prop): string {
  if (p.doc?.default != null) return p.doc.default
  if (p.default !== undefined) return `**${String(p.default)}**`
  return '–'
}

function docMeaning (p: Prop, path: string): string {
  const parts: string[] = []
  if (p.relay != null) {
    parts.push(p.relay.reloadable === true
      ? `→ relay \`${p.relay.config}\` in the pool's limits ConfigMap (\`--limits-file\`): **reloaded** by running relays, no restart`
      : `→ relay \`${p.relay.config}\` / \`${p.relay.flag}\`: a change **restarts** the relays`)
  }
  const text = p.doc?.text ?? (p.relay == null ? p.description : undefined)
  if (text != null) parts.push(text)
  const range = rangeText(p)
  if (range != null) parts.push(`Range ${range}${p.zeroOr != null ? ' (CEL for the gap)' : ''}`)
  if (p.rules != null && path !== 'spec') {
    for (const r of p.rules) if (p.zeroOr == null) parts.push(`CEL: ${r.message}`)
  }
  return parts.map((t) => t.replace(/\.$/, '')).join('; ').replace(/\|/g, '\\|').replace(/\n/g, ' ')
}

function tableRows (p: Prop, prefix: string): string[] {
  const rows: string[] = []
  for (const [k, v] of Object.entries(p.properties ?? {})) {
    const path = prefix === '' ? k : `${prefix}.${k}`
    if (v.doc?.hide !== true) rows.push(`| \`${path}\` | ${docType(v)} | ${docDefault(v)} | ${docMeaning(v, path)} |`)
    if (v.doc?.leaf !== true && v.properties != null && v.type === 'object' && v.doc?.hide === true) rows.push(...tableRows(v, path))
  }
  return rows
}

function allRules (p: Prop, out: string[] = []): string[] {
  for (const r of p.rules ?? []) out.push(r.message)
  for (const v of Object.values(p.properties ?? {})) allRules(v, out)
  if (p.items != null) allRules(p.items, out)
  return out
}

export function renderReadmeSections (s: CrdSource): Record<string, string> {
  const spec = s.root.properties!.spec!
  const status = s.root.properties!.status!
  return {
    spec: ['| field | type | default | meaning / validation |', '|---|---|---|---|', ...tableRows(spec, '')].join('\n'),
    status: ['| field | type | meaning |', '|---|---|---|', ...tableRows(status, '').map((r) => r.replace(/ \| [^|]* \| ([^|]*) \|$/, ' | $1 |'))].join('\n'),
    rules: allRules(s.root).map((m) => `- \`${m}\``).join('\n')
  }
}

const marker = (name: string, end: boolean): string => `<!-- generated:${name}:${end ? 'end' : 'start'} (${SOURCE}, npm run generate:crd) -->`

/** `readme` with every generated section replaced; throws when a marker is missing */
export function spliceReadme (readme: string, sections: Record<string, string>): string {
  let out = readme
  for (const [name, body] of Object.entries(sections)) {
    const start = marker(name, false)
    const end = marker(name, true)
    const i = out.indexOf(start)
    const j = out.indexOf(end)
    if (i === -1 || j === -1 || j < i) throw new Error(`${README_FILE}: markers of section ${name} not found (${start} … ${end})`)
    out = out.slice(0, i + start.length) + '\n' + body + '\n' + out.slice(j)
  }
  return out
}

// ------------------------------------------------------------------ all

/** every generated file: repository-relative path → content */
export function render (): Record<string, string> {
  const crd = renderCrd(RELAYPOOL_CRD)
  return {
    [CRD_FILE]: crd,
    [CHART_CRD_FILE]: crd,
    [TYPES_FILE]: renderTypes(RELAYPOOL_CRD),
    [SETTINGS_FILE]: renderSettings(RELAYPOOL_CRD),
    [README_FILE]: spliceReadme(readFileSync(ROOT + README_FILE, 'utf8'), renderReadmeSections(RELAYPOOL_CRD))
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [path, content] of Object.entries(render())) {
    let before: string | undefined
    try { before = readFileSync(ROOT + path, 'utf8') } catch {}
    if (before === content) continue
    writeFileSync(ROOT + path, content)
    process.stdout.write(`generate: wrote ${path}\n`)
  }
}
