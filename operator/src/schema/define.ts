/**
 * The language the RelayPool schema is written in: an OpenAPI v3 subset as
 * the API server takes it in a CRD (structural schema, CEL rules as
 * x-kubernetes-validations), plus what the generator needs for the other
 * outputs: the TypeScript type of a field, its row in crds/README.md, and the
 * relay flag it is passed as. operator/hack/generate.ts turns it into files.
 */

export interface CelRule { rule: string, message: string }

/** how a spec field reaches each relay: a flag of `pos-relay run` and the relay config key it sets */
export interface RelaySetting {
  /** flag of `pos-relay run`, e.g. --max-reservations */
  flag: string
  /** the relay config key it sets, e.g. limits.max_reservations */
  config: string
  /**
   * the relays apply a change without a restart: the operator writes it into the
   * pool's limits ConfigMap (the relay's --limits-file) instead of a flag, so a
   * change leaves the pod template, and every running relay, as it is. The relay
   * must list the config key in its RELOADABLE_LIMITS / RELOADABLE_RATE_LIMITS.
   */
  reloadable?: boolean
}

/** the field's row in crds/README.md */
export interface FieldDoc {
  /** the type column; default: derived from the schema */
  type?: string
  /** the default column; default: the schema's default, else – */
  default?: string
  /** the meaning column; ranges, enums and relay flags are appended by the generator */
  text?: string
  /** no row of its own (its children have rows) */
  hide?: boolean
  /** rows for the children are not generated (the parent's row describes them) */
  leaf?: boolean
}

export interface Prop {
  type?: 'integer' | 'number' | 'string' | 'boolean' | 'object' | 'array'
  format?: 'int32' | 'int64' | 'date-time'
  description?: string
  default?: unknown
  minimum?: number
  maximum?: number
  /** with minimum 0: the smallest value besides 0 (a CEL rule closes the gap; see zeroOrRange) */
  zeroOr?: number
  minLength?: number
  maxLength?: number
  maxItems?: number
  maxProperties?: number
  pattern?: string
  enum?: Array<string | number>
  required?: string[]
  properties?: Record<string, Prop>
  additionalProperties?: Prop
  items?: Prop
  anyOf?: Prop[]
  rules?: CelRule[]
  listType?: 'atomic' | 'set' | 'map'
  listMapKeys?: string[]
  preserveUnknownFields?: boolean
  intOrString?: boolean
  /** TypeScript type to emit instead of the derived one (e.g. a client-node type) */
  tsType?: string
  /** emit as a named export: an interface for an object, a union type for a string enum */
  tsName?: string
  doc?: FieldDoc
  relay?: RelaySetting
}

/** a CRD scale subresource */
export interface ScaleSubresource { specReplicasPath: string, statusReplicasPath: string, labelSelectorPath: string }

export interface PrinterColumn { name: string, type: string, description?: string, jsonPath: string, priority?: number }

export interface CrdSource {
  group: string
  version: string
  kind: string
  listKind: string
  plural: string
  singular: string
  shortNames: string[]
  categories: string[]
  /** comment lines at the top of the YAML */
  header: string[]
  labels: Record<string, string>
  scale: ScaleSubresource
  printerColumns: PrinterColumn[]
  root: Prop
  /** client-node types the generated TypeScript imports */
  tsImports: string[]
}

// builders: keep the source short where fields repeat a shape

export function int32 (description: string, extra: Partial<Prop> = {}): Prop {
  return { type: 'integer', format: 'int32', description, ...extra }
}

export function int64 (description: string, extra: Partial<Prop> = {}): Prop {
  return { type: 'integer', format: 'int64', description, ...extra }
}

/**
 * An integer that is 0 (a documented "off") or in [min, max]: the plain
 * bounds are minimum/maximum; only the gap between 0 and min needs CEL.
 */
export function zeroOrRange (path: string, min: number, max: number, message: string): Partial<Prop> {
  return { minimum: 0, maximum: max, zeroOr: min, rules: [{ rule: `self == 0 || self >= ${min}`, message: `${path} ${message}` }] }
}

export function secretKeyRef (description: string, defaultKey: string, extra: Record<string, Prop> = {}): Prop {
  return {
    type: 'object',
    description,
    required: ['name'],
    tsName: Object.keys(extra).length > 0 ? undefined : 'SecretKeyRef',
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 253 },
      key: { type: 'string', default: defaultKey, minLength: 1, maxLength: 253 },
      ...extra
    }
  }
}

export function stringMap (description: string, maxProperties: number): Prop {
  return { type: 'object', maxProperties, additionalProperties: { type: 'string' }, description }
}

/** an integer relay setting on one line: its range, its README row and the relay flag and config key it sets */
export interface IntSetting {
  description: string
  /** [minimum, maximum], or zeroOrRange(…) */
  range: [number, number] | Partial<Prop>
  /** the README's default column */
  default: string
  /** the README's meaning column */
  text?: string
  flag: string
  config: string
  /** int64 instead of int32 (byte counts) */
  int64?: boolean
  /** applied by running relays (limits ConfigMap), see RelaySetting.reloadable */
  reloadable?: boolean
}

export function intSetting (s: IntSetting): Prop {
  const range = Array.isArray(s.range) ? { minimum: s.range[0], maximum: s.range[1] } : s.range
  return {
    type: 'integer',
    format: s.int64 === true ? 'int64' : 'int32',
    description: s.description,
    ...range,
    doc: { type: s.int64 === true ? 'int64' : 'int', default: s.default, ...(s.text != null ? { text: s.text } : {}) },
    relay: { flag: s.flag, config: s.config, ...(s.reloadable === true ? { reloadable: true } : {}) }
  }
}
