/**
 * Text PostgreSQL can store. What a person sends may hold a NUL or a lone UTF-16 surrogate (JSON
 * allows both as escapes, PostgreSQL text refuses them): the opt-out is still recorded, with the
 * evidence made storable and flagged (docs/webhook.md "Text that cannot be stored as sent").
 */

// A NUL, or a UTF-16 surrogate without its pair (JSON allows both as escapes).
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

/**
 * Text PostgreSQL can store: NUL dropped, a lone surrogate replaced by U+FFFD. Applied to the
 * evidence before the ledger hashes it, so the stored and the hashed values are the same (the raw
 * payload, with its body_sha256, stays in the inbox).
 */
export function storableText(v: string): string {
  return v.replace(UNSTORABLE, (c) => (c === '\u0000' ? '' : '\uFFFD'))
}

/** The evidence with every string made storable; `changed` when anything was. */
export function storableEvidence(ev: Record<string, unknown>): { evidence: Record<string, unknown>; changed: boolean } {
  let changed = false
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') {
      const c = storableText(v)
      if (c !== v) changed = true
      return c
    }
    if (Array.isArray(v)) return v.map(walk)
    if (v !== null && typeof v === 'object') {
      const o: Record<string, unknown> = {}
      for (const [k, x] of Object.entries(v)) o[walk(k) as string] = walk(x)
      return o
    }
    return v
  }
  const evidence = walk(ev) as Record<string, unknown>
  return { evidence, changed }
}
