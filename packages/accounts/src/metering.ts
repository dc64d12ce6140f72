/**
 * Usage metering: the meter (metering/meter.ts) aggregates per account and hour and flushes
 * batches to a sink (metering/memory-sink.ts, metering/redis-sink.ts); metering/queries.ts reads
 * usage back. This module is their one entry point.
 */
export { hourKey, monthKey, MAX_QUERY_HOURS, type UsageQuery, type UsageSink } from './metering/usage-sink.js'
export { createMemoryUsageSink } from './metering/memory-sink.js'
export { createRedisUsageSink, FLUSH_MARKER_TTL_SECONDS, QUOTA_COUNTER_TTL_SECONDS, type RedisUsageSinkOptions } from './metering/redis-sink.js'
export { UsageMeter, type UsageMeterOptions, type UsageMeterStats } from './metering/meter.js'
export { monthlyBytes, queryUsage, usageToCsv, USAGE_CSV_COLUMNS } from './metering/queries.js'
