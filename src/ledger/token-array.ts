/** Elements a PostgreSQL array literal can hold unquoted: ids, hashes, enums, numbers, ISO times. */
const TOKEN = /^[\w.:+-]+$/

/**
 * The array as a PostgreSQL array literal, built directly when every element is such a token;
 * anything else is returned as is, for node-postgres to quote and escape element by element. Why:
 * the ledger's statements carry arrays of thousands of ids and hashes, and node-postgres's generic
 * escaping of each element is a visible share of an append's CPU (docs/performance.md).
 */
export function tokenArray(values: readonly unknown[]): string | readonly unknown[] {
  let out = '{'
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    if (i > 0) out += ','
    if (v === null || v === undefined) out += 'NULL'
    else {
      const t = String(v)
      // (unquoted NULL, in any case, would read as a null element)
      if (!TOKEN.test(t) || (t.length === 4 && t.toUpperCase() === 'NULL')) return values
      out += t
    }
  }
  return out + '}'
}
