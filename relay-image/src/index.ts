export { RelayServer, withPeerId, listenAddresses, type RelayServerOptions } from './relay.js'
export { loadQuic, quicTransport, QuicUnavailableError } from './quic.js'
export { RelayMetrics } from './metrics.js'
export { SampledLog } from './rate-limits.js'
export { DiscoveryRegistration, MAX_REGISTRATION_REPLY_BYTES, sendsSecretInClear, type RegistrationRecord } from './registration.js'
export { HopStatus, encodeHopStatus, type HopStatusCode } from './hop-status.js'
export { BufferBudget, circuitWindowBytes, type BudgetedCircuit } from './buffer-budget.js'
export { RELAY_DATA_PATH, relayDataPath, type RelayDataPath } from './data-path.js'
export {
  relayConfigSchema, parseConfig, loadConfig, writeConfig, newConfig, newKeypairHex, decodeKeypair, peerIdOfKeypair, formatIssues,
  effectiveAnnounce, quicTwin, isQuicAddr,
  ConfigError, DEFAULT_LIMITS, DEFAULT_RATE_LIMITS, DEFAULT_PORT, DEFAULT_METRICS_PORT, type RelayConfig, type RelayLimits, type NewConfigInput
} from './config.js'
export { createAccountPolicy, createMemoryReservationCounter, createRedisReservationCounter, type AccountPolicyDeps, type ReservationCounter } from './account-policy.js'
export { DEFAULT_PRESENTATIONS_PER_MINUTE, MAX_TICKET_BYTES, TicketGate, TICKET_PROTOCOL, ticketReplyPayload, type TicketResponse } from './auth.js'
export type { RelayAccountServices } from './account-services.js'
export { HopAdmission, type HopAdmissionOptions, type AdmissionAccounts, type Refusal, type ReserveAdmitted, type ConnectAdmitted } from './hop-admission.js'
export { HopAccounting, type HopAccountingOptions, type AccountingMeter, type BilledCircuit } from './hop-accounting.js'
export { installHopHooks, QuotaExceededError, type HopHooks, type HopHooksOptions, type AccountPolicy } from './hop-hooks.js'
export { LimitsFileWatcher, parseLimitsFile, effectiveLimits, limitsFileSchema, LIMITS_POLL_MS, RELOADABLE_LIMITS, RELOADABLE_RATE_LIMITS, type LimitsFile } from './live-limits.js'
export { RelayCluster, type RelayClusterOptions } from './workers/cluster.js'
export { SlotTable } from './workers/slot-table.js'
export { RemoteSlots } from './workers/remote-slots.js'
export type { SlotLedger, ReservationSlotRefusal } from './slot-ledger.js'
