/**
 * Strict RFC 3339 date-times, the one parser for every time the service takes (request bodies,
 * query parameters, CSV cells): docs/input-rules.md.
 *
 * `new Date()` alone is too lenient: it rolls `2026-02-30` over to 2 March and accepts year 0000,
 * which PostgreSQL's timestamptz refuses (a 500 instead of a 400). Here the calendar is checked
 * (month lengths, leap years), and the instant must lie in years 0001-9999 in UTC, which both
 * JavaScript and PostgreSQL represent exactly. Seconds may be omitted (`10:00Z`) and the offset
 * may be written without its colon (`+0100`), as the ledger always accepted; a leap second (`:60`)
 * is refused because neither side can represent it.
 */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?([Zz]|([+-])(\d{2}):?(\d{2}))$/

/** 0001-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z. */
const MIN_MS = -62_135_596_800_000
const MAX_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

function daysIn(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31
}

/** The instant `s` names (millisecond precision), or null if it is not a valid date-time in range. */
export function parseDateTime(s: string): Date | null {
  if (typeof s !== 'string' || s.length > 64) return null
  const m = RFC3339.exec(s)
  if (!m) return null
  const year = +m[1]!
  const month = +m[2]!
  const day = +m[3]!
  const hour = +m[4]!
  const minute = +m[5]!
  const second = m[6] === undefined ? 0 : +m[6]
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return null
  if (hour > 23 || minute > 59 || second > 59) return null
  let offsetMin = 0
  if (m[9] !== undefined) {
    const oh = +m[10]!
    const om = +m[11]!
    if (oh > 23 || om > 59) return null
    offsetMin = (m[9] === '-' ? -1 : 1) * (oh * 60 + om)
  }
  const ms = m[7] === undefined ? 0 : Math.floor(Number(`0${m[7]}`) * 1000)
  // Date.UTC maps years 0-99 to 1900-1999; setUTCFullYear does not.
  const d = new Date(Date.UTC(2000, month - 1, day, hour, minute, second, ms))
  d.setUTCFullYear(year)
  const t = d.getTime() - offsetMin * 60_000
  if (!(t >= MIN_MS && t <= MAX_MS)) return null
  return new Date(t)
}

/** Ajv format: a string parseDateTime accepts. */
export const isDateTime = (s: string): boolean => parseDateTime(s) !== null
