/**
 * Edit distance with adjacent transpositions (optimal string alignment): `discvoery` is one edit
 * from `discovery`, as a typist would count it.
 */
export function editDistance (a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => i === 0 ? j : j === 0 ? i : 0))
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1)
    }
  }
  return d[a.length]![b.length]!
}

/**
 * The candidate closest to `word`, if it is close enough to be a typo of it (at most 40 % of the
 * word's length in edits, as commander's own suggestions): `discvoery` → `discovery`, `xyz` → none.
 */
export function closest (word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    const distance = editDistance(word.toLowerCase(), c.toLowerCase())
    if (distance < bestDistance) { best = c; bestDistance = distance }
  }
  return best != null && bestDistance <= Math.max(1, Math.floor(word.length * 0.4)) ? best : undefined
}

/** The error for `pos-relay <word>` when no command is called `word`. */
export function unknownCommandMessage (word: string, commands: readonly string[]): string {
  const suggestion = closest(word, commands)
  return `unknown command '${word}'.${suggestion != null ? ` Did you mean '${suggestion}'?` : ''} Commands: ${commands.join(', ')} (pos-relay --help lists them)`
}
