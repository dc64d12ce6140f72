/** What a circuit gives the budget: the bytes it buffers now, and a switch that holds its reading. */
export interface BudgetedCircuit {
  buffered: () => number
  hold: (held: boolean) => void
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

  /** `limitBytes` 0: no budget (measured all the same, for the metric) */
  constructor (private readonly limitBytes: number) {}

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

  /** sums every circuit's buffers; holds or releases reading everywhere when the sum crosses the budget */
  measure (): void {
    let total = 0
    for (const circuit of this.circuits) total += circuit.buffered()
    this.total = total
    const over = this.limitBytes > 0 && total >= this.limitBytes
    if (over === this.held) return
    this.held = over
    for (const circuit of [...this.circuits]) circuit.hold(over)
  }
}
