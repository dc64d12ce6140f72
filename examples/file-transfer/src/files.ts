/**
 * The example's file handling: paths as the user typed them, the wire header,
 * and received files that only get their final name once their SHA-256
 * matched the sender's (a failed or partial transfer leaves no file that looks
 * received).
 */
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs'
import { access, constants, mkdir, open, rename, rm, stat } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'

/** A problem with the command line: printed as one line, exit code 2. */
export class UsageError extends Error {}

/**
 * The directory the user ran the command from. `npm run -w examples/file-transfer`
 * runs the script in the workspace's folder and keeps the caller's in INIT_CWD;
 * only trusted when npm runs this package's own script (an outer `npm test`
 * sets INIT_CWD too, for a different folder).
 */
export function invocationDir (env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  if (env.npm_package_name === '@pos-relay/example-file-transfer' && env.INIT_CWD != null && env.INIT_CWD !== '') return env.INIT_CWD
  return cwd
}

export const userPath = (p: string): string => resolve(invocationDir(), p)

const reason = (err: any): string => {
  switch (err?.code) {
    case 'ENOENT': return 'no such file or directory'
    case 'EACCES': case 'EPERM': return 'permission denied'
    case 'EISDIR': return 'is a directory'
    case 'ENOTDIR': return 'not a directory'
    default: return String(err?.message ?? err)
  }
}

/** The absolute path of `--file`, once it is known to be a readable regular file. */
export async function readableFile (given: string): Promise<string> {
  const path = userPath(given)
  try {
    const fh = await open(path, 'r')
    try {
      if ((await fh.stat()).isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' })
    } finally {
      await fh.close()
    }
  } catch (err) {
    throw new UsageError(`cannot read --file ${given} (${path}): ${reason(err)}`)
  }
  return path
}

/** The absolute path of `--out`, created if missing, once it is known to be a writable directory. */
export async function writableDir (given: string): Promise<string> {
  const path = userPath(given)
  try {
    const st = await stat(path).catch(async (err) => {
      if (err?.code !== 'ENOENT') throw err
      await mkdir(path, { recursive: true })
      return await stat(path)
    })
    if (!st.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' })
    await access(path, constants.W_OK)
  } catch (err) {
    throw new UsageError(`cannot write to --out ${given} (${path}): ${reason(err)}`)
  }
  return path
}

export async function sha256File (path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk)
  return hash.digest('hex')
}

/**
 * The header before the file's bytes: `<sha256 hex> <file name>\n`. The
 * receiver needs the digest up front to decide whether to keep the file.
 */
export const encodeHeader = (sha256: string, name: string): string => `${sha256} ${name}\n`

export function parseHeader (line: string): { sha256: string, name: string } {
  const m = /^([0-9a-f]{64}) (.+)$/.exec(line)
  if (m?.[1] == null || m[2] == null) throw new Error('bad header: expected "<sha256> <name>"')
  const name = basename(m[2])
  if (name === '' || name === '.' || name === '..') throw new Error('bad header: empty file name')
  return { sha256: m[1], name }
}

/**
 * A file being received into `dir`: written as `.received-<name>.<random>.part`
 * and renamed to `received-<name>` by commit(); discard() removes the part file.
 */
export class IncomingFile {
  readonly finalPath: string
  readonly partPath: string
  private readonly out: WriteStream
  private error: Error | undefined

  constructor (dir: string, name: string) {
    this.finalPath = join(dir, 'received-' + name)
    this.partPath = join(dir, `.received-${name}.${randomBytes(4).toString('hex')}.part`)
    this.out = createWriteStream(this.partPath, { flags: 'wx' })
    // kept, and thrown by the next write or commit (a stream error with no listener would crash the listener)
    this.out.on('error', (err) => { this.error = err })
  }

  async write (buf: Uint8Array): Promise<void> {
    if (this.error != null) throw this.error
    if (!this.out.write(buf)) {
      await new Promise<void>((resolve) => { this.out.once('drain', resolve).once('close', resolve) })
      if (this.error != null) throw this.error
    }
  }

  private async close (): Promise<void> {
    if (!this.out.closed) await new Promise<void>((resolve) => { this.out.once('close', resolve).end() })
    if (this.error != null) throw this.error
  }

  async commit (): Promise<void> {
    await this.close()
    await rename(this.partPath, this.finalPath)
  }

  async discard (): Promise<void> {
    await this.close().catch(() => {})
    await rm(this.partPath, { force: true })
  }
}
