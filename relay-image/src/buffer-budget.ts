import { CIRCUIT_WINDOW_BYTES, MIN_CIRCUIT_WINDOW_BYTES } from './splice.js'

/** What a circuit gives the budget: the bytes it buffers now, a switch that holds its reading, and its receive window. */
export interface BudgetedCircuit {
  buffered: () => number
  hold: (held: boolean) => void
  setWindow: (bytes: number) => void
}

/**
 * The receive window each side of a circuit may grant while `open` circuits
 * share a budget of `budgetBytes`: budget / (4 × open), within
 * MIN_CIRCUIT_WINDOW_BYTES..CIRCUIT_WINDOW_BYTES (the minimum, 64 KiB, for
 * 1,024 circuits and the default 256 MiB; the full 16 MiB for up to 4).
 *
 * Holding stops the relay reading, not the peers sending: what a window
 * already allows still arrives. With 16 MiB windows, 1,024 stalled circuits
 * held gigabytes whatever the budget. Four windows per circuit: a stalled
 * direction holds up to two (the backlog it read while paused, and the
 * previous backlog, handed to the other side when it resumed), and a
 * circuit has two directions; so open circuits all stalled both ways fit
 * the budget. A share of the open circuits rather than of max_circuits
 * keeps the large windows a long-distance circuit needs (throughput is at
 * most window / round-trip time) while the relay is not crowded.
 */
export function circuitWindowBytes (budgetBytes: number, open: number): number {
  if (budgetBytes <= 0) return CIRCUIT_WINDOW_BYTES
  const share = Math.floor(budgetBytes / (4 * Math.max(open, 1)))
  return Math.min(CIRCUIT_WINDOW_BYTES, Math.max(MIN_CIRCUIT_WINDOW_BYTES, share))
}

/** How often open circuits' buffers are measured. Buffers change without events (a paused stream's read buffer fills silently), so they are sampled. */
const MEASURE_INTERVAL_MS = 50

/**
 * A relay-wide bound on the bytes buffered in circuits (read buffers of
 * paused streams, write buffers waiting for the other side's window).
 * Backpressure bounds each circuit by its yamux windows, but circuits are
 * many: 1,024 circuits to listeners that never read could pin gigabytes.
 * While the sum is at the budget every circuit holds its reading (so the sum
 * can only shrink, by what drains, or grow by what peers already had in
 * flight) and new circuits are refused; below it, reading resumes.
 */
export class BufferBudget {
  private readonly circuits = new Set<BudgetedCircuit>()
  private total = 0
  private held = false
  private timer?: NodeJS.Timeout
  /** the receive window last given to every circuit */
  private window = 0

  /**
   * `limitBytes` 0: no budget (measured all the same, for the metric).
   * `outside`: bytes held for circuits outside their stream buffers, counted
   * in the sum (the sockets' queues the tickWrites data path lets grow past
   * upstream's 16 KiB: tickWritesQueuedBytes).
   */
  constructor (private limitBytes: number, private readonly outside: () => number = () => 0) {}

  /** a new budget (limits file): applied at once, holding or releasing reading as the sum now stands */
  setLimit (bytes: number): void {
    if (bytes === this.limitBytes) return
    this.limitBytes = bytes
    this.window = 0 // every circuit gets the window of the new budget
    this.measure()
  }

  /** bytes buffered in all circuits at the last measurement */
  get bytes (): number {
    return this.total
  }

  /** true while new circuits must be refused */
  get exhausted (): boolean {
    return this.held
  }

  add (circuit: BudgetedCircuit): void {
    this.circuits.add(circuit)
    // the new circuit gets its share before any byte flows; the others are
    // brought down to it at the next measurement
    circuit.setWindow(circuitWindowBytes(this.limitBytes, this.circuits.size))
    if (this.held) circuit.hold(true)
    // sampled only while there is something to sample
    if (this.timer == null) {
      this.timer = setInterval(() => { this.measure() }, MEASURE_INTERVAL_MS)
      this.timer.unref()
    }
  }

  delete (circuit: BudgetedCircuit): void {
    if (!this.circuits.delete(circuit)) return
    if (this.circuits.size === 0) {
      clearInterval(this.timer)
      this.timer = undefined
    }
    this.measure()
  }

  /** sums every circuit's buffers; holds or releases reading everywhere when the sum crosses the budget; gives every circuit its window when the share changed */
  measure (): void {
    const window = circuitWindowBytes(this.limitBytes, this.circuits.size)
    const rewindow = window !== this.window
    this.window = window
    let total = this.outside()
    for (const circuit of this.circuits) {
      if (rewindow) circuit.setWindow(window)
      total += circuit.buffered()
    }
    this.total = total
    const over = this.limitBytes > 0 && total >= this.limitBytes
    if (over === this.held) return
    this.held = over
    for (const circuit of [...this.circuits]) circuit.hold(over)
  }
}
