/**
 * Preloaded (`node --import`) into the relays and servers the benches start through
 * the CLI: the relay exits when its stdin closes, i.e. when the bench process
 * is gone, even if the bench was SIGKILLed and could not stop it. The relay
 * itself never reads stdin.
 */
process.stdin.on('error', () => {})
process.stdin.once('close', () => { process.exit(0) })
process.stdin.once('end', () => { process.exit(0) })
process.stdin.resume()
