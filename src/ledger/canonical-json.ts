/**
 * Canonical JSON, the byte form that ledger hashes and checkpoint signatures cover:
 * - object keys sorted by UTF-16 code units (JavaScript's default sort), recursively;
 * - no white space; strings and numbers as JSON.stringify writes them;
 * - properties whose value is `undefined` are omitted, `null` is kept;
 * - arrays keep their order;
 * - the result is encoded as UTF-8.
 * Timestamps are written by the ledger as RFC 3339 strings in UTC with milliseconds
 * (`2026-11-22T02:20:04.000Z`), which is what `Date.prototype.toISOString` produces.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError('non-finite number')
    if (typeof value === 'bigint') return value.toString()
    return JSON.stringify(value)
  }
  if (value instanceof Date) return JSON.stringify(value.toISOString())
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`
  const obj = value as Record<string, unknown>
  const parts: string[] = []
  for (const key of Object.keys(obj).sort()) {
    const v = obj[key]
    if (v === undefined) continue
    parts.push(`${JSON.stringify(key)}:${canonicalJson(v)}`)
  }
  return `{${parts.join(',')}}`
}
