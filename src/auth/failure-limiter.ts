/**
 * Failed authentications per client address: past `max` failures within `windowMs` an address is
 * refused (429, Retry-After) until its window ends, before any key lookup, so guessing keys costs
 * the guesser time and the database nothing. Counted in this process (each instance keeps its own
 * counts; behind N instances an address gets up to N × max failures per window); the table is
 * bounded, oldest addresses dropped first. See docs/operations.md.
 */
export interface AuthFailureLimiter {
  /** Seconds until `ip` may try again (0: not blocked). */
  blockedFor(ip: string, now?: number): number
  /** Records one failed authentication of `ip`. */
  fail(ip: string, now?: number): void
}

export function createAuthFailureLimiter(opts: { max: number; windowMs: number; maxTracked?: number }): AuthFailureLimiter {
  const maxTracked = opts.maxTracked ?? 100_000
  const byIp = new Map<string, { count: number; resetAt: number }>()
  return {
    blockedFor(ip, now = Date.now()) {
      const e = byIp.get(ip)
      if (!e) return 0
      if (e.resetAt <= now) {
        byIp.delete(ip)
        return 0
      }
      return e.count >= opts.max ? Math.ceil((e.resetAt - now) / 1000) : 0
    },
    fail(ip, now = Date.now()) {
      const e = byIp.get(ip)
      if (e && e.resetAt > now) {
        e.count++
        return
      }
      byIp.delete(ip)
      byIp.set(ip, { count: 1, resetAt: now + opts.windowMs })
      // Map order is insertion order: the first entries are the oldest windows.
      while (byIp.size > maxTracked) byIp.delete(byIp.keys().next().value!)
    },
  }
}
