/**
 * Per-request HTTP metrics at the cost of a few additions: `http_requests_total` and the
 * `http_request_duration_seconds` histogram, kept as plain counters per (method, route, status)
 * and handed to prom-client's registry only when /metrics is scraped.
 *
 * Why not prom-client's Counter#inc and Histogram#observe per request: each call validates and
 * hashes its label object, and the hook that fed them read `request.routeOptions` (a getter that
 * builds a fresh options object), a visible share of a pre-send check's CPU (docs/performance.md).
 * Here each route's hook knows its route pattern from when the route was added (as the
 * auth hook does), and recording is a Map lookup and three increments.
 *
 * The exposition is prom-client's own (its registry formats these objects as it formats its own
 * metrics): same names, labels and bucket layout as a prom-client Counter and Histogram.
 */
import type { Registry } from 'prom-client'

export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const

interface Labels {
  method: string
  route: string
  status: string
}

/** One (method, route, status): its count, the sum of its durations, and per-bucket counts. */
interface Cell {
  labels: Labels
  count: number
  sum: number
  /** Non-cumulative: index i counts durations in (bucket i-1, bucket i]; the last index, above all. */
  buckets: Float64Array
}

export interface RequestStats {
  /** A recorder for one route pattern: `(method, status, seconds)`. */
  forRoute(route: string): (method: string, status: number, seconds: number) => void
  reset(): void
}

/**
 * Registers `http_requests_total` and `http_request_duration_seconds` on `registry` and returns
 * the recorders that feed them.
 */
export function createRequestStats(registry: Registry): RequestStats {
  // Every cell, in the order first seen (the exposition order); cells are never removed (the
  // label space is bounded: route patterns x methods x status codes).
  const cells: Cell[] = []

  function forRoute(route: string) {
    // Per method, per status code: numbers as keys, no string built per request.
    const byMethod = new Map<string, Map<number, Cell>>()
    return (method: string, status: number, seconds: number) => {
      let byStatus = byMethod.get(method)
      if (byStatus === undefined) byMethod.set(method, (byStatus = new Map()))
      let cell = byStatus.get(status)
      if (cell === undefined) {
        cell = { labels: { method, route, status: String(status) }, count: 0, sum: 0, buckets: new Float64Array(DURATION_BUCKETS.length + 1) }
        byStatus.set(status, cell)
        cells.push(cell)
      }
      cell.count++
      cell.sum += seconds
      let i = 0
      while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++
      cell.buckets[i]!++
    }
  }

  function reset() {
    for (const c of cells) {
      c.count = 0
      c.sum = 0
      c.buckets.fill(0)
    }
  }

  // Objects shaped as prom-client's metrics: the registry calls get() when it formats /metrics
  // (getMetricsAsString) or JSON, and reset() on resetMetrics().
  const requests = {
    name: 'http_requests_total',
    help: 'HTTP requests by method, route and status',
    type: 'counter',
    aggregator: 'sum',
    get: async () => ({
      name: requests.name,
      help: requests.help,
      type: requests.type,
      aggregator: requests.aggregator,
      values: cells.map((c) => ({ labels: { ...c.labels }, value: c.count })),
    }),
    reset,
  }
  const duration = {
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency by method, route and status',
    type: 'histogram',
    aggregator: 'sum',
    get: async () => {
      const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = []
      for (const c of cells) {
        let cumulative = 0
        DURATION_BUCKETS.forEach((le, i) => {
          cumulative += c.buckets[i]!
          values.push({ labels: { le, ...c.labels }, value: cumulative, metricName: `${duration.name}_bucket` })
        })
        values.push({ labels: { le: '+Inf', ...c.labels }, value: c.count, metricName: `${duration.name}_bucket` })
        values.push({ labels: { ...c.labels }, value: c.sum, metricName: `${duration.name}_sum` })
        values.push({ labels: { ...c.labels }, value: c.count, metricName: `${duration.name}_count` })
      }
      return { name: duration.name, help: duration.help, type: duration.type, aggregator: duration.aggregator, values }
    },
    reset,
  }
  // prom-client types a metric as one of its classes; its registry needs only name, get and reset.
  registry.registerMetric(requests as unknown as Parameters<Registry['registerMetric']>[0])
  registry.registerMetric(duration as unknown as Parameters<Registry['registerMetric']>[0])

  return { forRoute, reset }
}
