export { createLogger, REDACTED_PATHS, type Logger, type CreateLoggerOptions } from './logger.js'
export { Backoff, sleep, type BackoffOptions } from './backoff.js'
export { HttpServer, send, type HttpRoute } from './http.js'
export { relayAddressProblem, dialableRelayAddrs, MAX_RELAY_ADDRS, type AddressPolicy } from './addresses.js'
