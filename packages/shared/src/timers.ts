/**
 * The longest duration a Node.js timer holds (2^31 - 1 ms, ~24.8 days):
 * setTimeout runs a longer one after 1 ms instead (a relay configured with
 * such a circuit duration ended every circuit at once). Durations that end
 * up in a timer are bounded by it where they are parsed.
 */
export const MAX_TIMER_SECONDS = Math.floor((2 ** 31 - 1) / 1000)
