export { createLogger, REDACTED_PATHS, type Logger, type CreateLoggerOptions } from './logger.js'
export { Backoff, backoffDelay, sleep, type BackoffOptions } from './backoff.js'
export { HttpServer, send, type HttpRoute } from './http.js'
export { MAX_TIMER_SECONDS } from './timers.js'
export { relayAddressProblem, dialableRelayAddrs, MAX_RELAY_ADDRS, type AddressPolicy } from './addresses.js'
export { readTextCapped, ResponseTooLargeError, MAX_RESPONSE_BYTES } from './body.js'
export { parseBoolean, redisUrlProblem, LOG_LEVELS } from './config-values.js'
export {
  registrationSigningPayload,
  signRegistration,
  registrationSignatureProblem,
  REGISTRATION_SIGNATURE_DOMAIN,
  MAX_SIGNATURE_SKEW_MS,
  type SignedFields,
  type SignedOperation,
  type RegistrationProof
} from './registration-signature.js'
export { FileConfigError, readJsonFile, readNamedFile, readSecretFile } from './files.js'
export { rankRelays, topRelays, topRelayPositions, rendezvousScore, compareUtf8 } from './rendezvous.js'
export { keyObjectSigning } from './signing-key.js'
