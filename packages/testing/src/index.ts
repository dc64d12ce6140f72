export { freePort } from './ports.js'
export { startRedis, type RedisServer, type StartRedisOptions } from './redis.js'
export { waitFor, type WaitForOptions } from './wait.js'
export { scrapeMetric } from './metrics.js'
