/** Default cap for response bodies our clients read: far above any legitimate answer (a relay list, a ticket, an admin reply). */
export const MAX_RESPONSE_BYTES = 1024 * 1024

export class ResponseTooLargeError extends Error {
  override name = 'ResponseTooLargeError'
  constructor (readonly url: string, readonly maxBytes: number) {
    super(`response from ${url} exceeds ${maxBytes} bytes; refusing to read more`)
  }
}

/**
 * Reads a fetch Response body as text, at most `maxBytes` of it. A server (or anyone in its
 * place) could otherwise make a client buffer an unbounded body: `res.text()` has no limit.
 * Stops reading and cancels the stream as soon as the cap is passed.
 */
export async function readTextCapped (res: Response, maxBytes = MAX_RESPONSE_BYTES): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? NaN)
  if (declared > maxBytes) {
    await res.body?.cancel().catch(() => {})
    throw new ResponseTooLargeError(res.url, maxBytes)
  }
  if (res.body == null) return ''
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > maxBytes) {
      await reader.cancel().catch(() => {})
      throw new ResponseTooLargeError(res.url, maxBytes)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}
