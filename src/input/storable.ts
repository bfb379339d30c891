/**
 * What PostgreSQL can store exactly as it was sent (docs/input-rules.md).
 *
 * - `text` and `jsonb` refuse U+0000 (SQLSTATE 22021 / 22P05), so a NUL byte in a value or a key
 *   would fail in the driver instead of answering a clear 400.
 * - An unpaired UTF-16 surrogate (`"\ud800"` in JSON) is not Unicode: node-postgres encodes it as
 *   U+FFFD, so what is stored differs from what was hashed (a permanent false `hash_mismatch` in
 *   `/audit/verify`), and two distinct identifiers would collide on the same stored value.
 * - Nesting deeper than MAX_DEPTH serves no consent use and would exhaust recursive code
 *   (canonical JSON, hashing) on hostile input.
 * Such input is refused, never repaired, so the hash always covers exactly what is stored.
 */

/** Deepest nesting (objects and arrays) accepted in a request document or an evidence object. */
export const MAX_DEPTH = 32

/** A NUL, a high surrogate not followed by a low one, or a low surrogate not preceded by a high one. */
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

export type UnstorableReason = 'nul_character' | 'lone_surrogate'

/** Why `s` cannot be stored exactly, or undefined when it can. */
export function unstorable(s: string): UnstorableReason | undefined {
  const m = UNSTORABLE.exec(s)
  if (m === null) return undefined
  return m[0] === '\u0000' ? 'nul_character' : 'lone_surrogate'
}

export interface TextProblem {
  /** JSON pointer (RFC 6901) below the walked value's root. */
  pointer: string
  code: UnstorableReason | 'too_deep'
  message: string
}

const MESSAGES: Record<TextProblem['code'], string> = {
  nul_character: 'contains a NUL character (U+0000), which cannot be stored',
  lone_surrogate: 'contains an unpaired UTF-16 surrogate, which is not valid Unicode',
  too_deep: `is nested more than ${MAX_DEPTH} levels deep`,
}

/** A JSON-pointer segment; characters that cannot be stored are shown as U+FFFD. */
export function pointerSegment(key: string): string {
  const shown = unstorable(key) === undefined ? key : key.replace(new RegExp(UNSTORABLE.source, 'g'), '\ufffd')
  return shown.replace(/~/g, '~0').replace(/\//g, '~1')
}

/** Plain JSON containers only: a Buffer, a stream or a Date is not walked. */
function isContainer(v: object): boolean {
  if (Array.isArray(v)) return true
  const proto = Object.getPrototypeOf(v) as unknown
  return proto === Object.prototype || proto === null
}

/**
 * Every string (value or key) of a JSON value that cannot be stored, and the first place nested
 * deeper than `maxDepth` (the value itself is depth 0; its members depth 1). At most `limit`
 * problems are collected; the walk never recurses below `maxDepth`.
 */
export function findUnstorable(value: unknown, base = '', maxDepth = MAX_DEPTH, limit = 20): TextProblem[] {
  const out: TextProblem[] = []
  // The path is kept as raw segments and turned into a pointer only for a problem: a clean body of
  // 10,000 identifiers (the batch check) then builds no strings at all.
  const path: (string | number)[] = []
  const pointerOf = () => base + path.map((s) => `/${typeof s === 'number' ? s : pointerSegment(s)}`).join('')
  const add = (code: TextProblem['code']) => {
    if (out.length < limit) out.push({ pointer: pointerOf(), code, message: MESSAGES[code] })
  }
  const walk = (v: unknown, depth: number): void => {
    if (out.length >= limit) return
    if (typeof v === 'string') {
      const why = unstorable(v)
      if (why) add(why)
      return
    }
    if (v === null || typeof v !== 'object' || !isContainer(v)) return
    if (depth >= maxDepth) return add('too_deep')
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        path.push(i)
        walk(v[i], depth + 1)
        path.pop()
      }
      return
    }
    for (const k of Object.keys(v)) {
      path.push(k)
      const why = unstorable(k)
      if (why) add(why)
      walk((v as Record<string, unknown>)[k], depth + 1)
      path.pop()
    }
  }
  walk(value, 0)
  return out
}
