import { randomBytes } from 'node:crypto'
import { open, rename, rm, stat } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { Command } from 'commander'
import { generateTicketKey, parseTicketKeys, publicTicketKey, type TicketKey } from '@pos-relay/accounts'
import { readJsonFile } from '@pos-relay/shared'
import { option } from '../options.js'
import { ensureSecretsCommand } from './ensure-secrets.js'

/** Writes `content` to `file` with mode 0600: new files only, unless `replace` (then atomically). */
async function writePrivate (file: string, content: string, replace: boolean): Promise<void> {
  if (!replace) {
    const fh = await open(file, 'wx', 0o600)
    try { await fh.writeFile(content) } finally { await fh.close() }
    return
  }
  const tmp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`)
  try {
    const fh = await open(tmp, 'wx', 0o600)
    try { await fh.writeFile(content); await fh.sync() } finally { await fh.close() }
    await rename(tmp, file)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}

async function readKeys (file: string): Promise<TicketKey[]> {
  const json = await readJsonFile('ticket keys file', file, ` (create it with \`pos-relay keys generate --out ${file}\`)`)
  try { return parseTicketKeys(json) } catch (err: any) { throw new Error(`${file}: ${err.message}`) }
}

/** Loads a ticket keys file (for `pos-relay discovery`). */
export { readKeys as readTicketKeysFile }

interface GenerateOptions { out?: string, addTo?: string, force?: boolean }

export function keysCommand (): Command {
  return new Command('keys')
    .description('Ticket-signing keys (Ed25519 JWKs) for the discovery API')
    .addCommand(new Command('generate')
      .description('Generate a ticket-signing key. Without --out/--add-to the JSON array is printed to stdout')
      .addOption(option('-o, --out <file>', 'write a new keys file (JSON array with one private JWK, mode 0600); refuses to overwrite without --force'))
      .addOption(option('--add-to <file>', 'rotation: prepend a new key to an existing keys file (the new key signs, the old ones stay published)'))
      .addOption(option('--force', 'with --out: overwrite an existing file'))
      .addHelpText('after', '\nRotation without downtime: `keys generate --add-to keys.json`, restart discovery (it signs with the new key\nand publishes both), then after the ticket TTL (at most 1 h) remove the old key from the file and restart again.\n')
      .action(async (opts: GenerateOptions) => {
        if (opts.out != null && opts.addTo != null) throw new Error('use either --out or --add-to, not both')
        const key = await generateTicketKey()
        if (opts.addTo != null) {
          const existing = await readKeys(opts.addTo)
          if (existing.some((k) => k.kid === key.kid)) throw new Error('generated a duplicate kid; try again')
          const keys = [key, ...existing]
          await writePrivate(opts.addTo, JSON.stringify(keys, null, 2) + '\n', true)
          process.stdout.write(JSON.stringify({ event: 'ticket_key_added', file: opts.addTo, kid: key.kid, keys: keys.map((k) => k.kid) }) + '\n')
          return
        }
        if (opts.out != null) {
          const exists = await stat(opts.out).then(() => true, () => false)
          if (exists && opts.force !== true) throw new Error(`${opts.out} already exists; pass --force to overwrite it (or --add-to to rotate)`)
          await writePrivate(opts.out, JSON.stringify([key], null, 2) + '\n', exists)
          process.stdout.write(JSON.stringify({ event: 'ticket_key_generated', file: opts.out, kid: key.kid }) + '\n')
          return
        }
        process.stdout.write(JSON.stringify([key], null, 2) + '\n')
      }))
    .addCommand(ensureSecretsCommand())
    .addCommand(new Command('public')
      .description('Print the public key set (JWKS) of a keys file, e.g. to configure relays offline')
      .addOption(option('-i, --in <file>', 'keys file', 'POS_RELAY_TICKET_KEYS_FILE', 'TICKET_KEYS_FILE').makeOptionMandatory())
      .action(async (opts: { in: string }) => {
        const keys = await readKeys(opts.in)
        process.stdout.write(JSON.stringify({ keys: keys.map(publicTicketKey) }, null, 2) + '\n')
      }))
}
