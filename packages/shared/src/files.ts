import { readFile } from 'node:fs/promises'

/**
 * A file the configuration names (a secret, keys, tiers) cannot be used. Named `ConfigError`, as the
 * CLI's own configuration errors, so the process exits with status 2: the setup, not the run, is wrong.
 */
export class FileConfigError extends Error {
  override name = 'ConfigError'
}

/**
 * The one reader of the files a flag or setting names. Errors name the file and what named it
 * (`label`: `--p2p-secret-file`, `ticket keys file`), never its content; `hint` follows "does not exist".
 */
export async function readNamedFile (label: string, file: string, hint = ''): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (err: any) {
    const why = err.code === 'ENOENT'
      ? `does not exist${hint}`
      : err.code === 'EISDIR' ? 'is a directory' : err.code === 'EACCES' ? 'is not readable (permission denied)' : `cannot be read (${err.code ?? err.message})`
    throw new FileConfigError(`${label} ${file} ${why}`)
  }
}

/** A secret kept in a file (Kubernetes Secret volumes, Docker secrets): trimmed; an empty one is refused. */
export async function readSecretFile (label: string, file: string): Promise<string> {
  const secret = (await readNamedFile(label, file)).trim()
  if (secret === '') throw new FileConfigError(`${label} ${file} is empty`)
  return secret
}

/** A JSON file (keys, tiers), parsed; the caller checks its shape. */
export async function readJsonFile (label: string, file: string, hint = ''): Promise<unknown> {
  const text = await readNamedFile(label, file, hint)
  try {
    return JSON.parse(text)
  } catch (err: any) {
    // V8's message may quote the text (`"hunter2" is not valid JSON`): only the position is kept
    const at = /position (\d+)/.exec(String(err.message))
    throw new FileConfigError(`${label} ${file} is not valid JSON${at != null ? ` (at character ${at[1]!})` : ''}`)
  }
}
