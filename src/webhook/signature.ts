/**
 * Meta webhook signatures: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw
 * body keyed with the app secret>`. The HMAC is computed over the exact bytes received (never a
 * re-serialised body) and compared with `timingSafeEqual` against EVERY configured secret (rotation:
 * WHATSAPP_APP_SECRETS is comma-separated), without stopping at the first match, so the time taken
 * does not reveal which secret matched or how much of the signature was right.
 * https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto'

/** The configured secrets, trimmed, empty ones dropped. */
export function parseSecrets(csv: string | undefined): string[] {
  return (csv ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
}

export function sign(raw: Buffer | string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(raw).digest('hex')}`
}

const HEADER = /^sha256=([0-9a-fA-F]{64})$/

/** True when `header` is a valid signature of `raw` under at least one of `secrets`. */
export function verifySignature(raw: Buffer, header: string | string[] | undefined, secrets: string[]): boolean {
  if (typeof header !== 'string' || secrets.length === 0) return false
  const m = HEADER.exec(header.trim())
  if (!m) return false
  const given = Buffer.from(m[1]!, 'hex')
  let ok = false
  for (const secret of secrets) {
    const expected = createHmac('sha256', secret).update(raw).digest()
    // Both are 32 bytes. The comparison is the left operand, so it runs for every secret.
    ok = timingSafeEqual(expected, given) || ok
  }
  return ok
}

/** Constant-time string equality (the verify token), via fixed-length digests. */
export function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest()
  const hb = createHash('sha256').update(b).digest()
  return timingSafeEqual(ha, hb)
}
