/** The per-route request recorders behind http_requests_total and http_request_duration_seconds. */
import t from 'tap'
import { Registry } from 'prom-client'
import { createRequestStats, DURATION_BUCKETS } from '../../src/plugins/request-stats.js'

const line = (text: string, re: RegExp) => {
  const m = re.exec(text)
  return m ? Number(m[1]) : undefined
}

t.test('counts, sums and cumulative buckets as Prometheus expects them', async (t) => {
  const registry = new Registry()
  const stats = createRequestStats(registry)
  const check = stats.forRoute('/consent/check')
  const seconds = [0.0004, 0.001, 0.003, 0.003, 0.2, 42]
  for (const s of seconds) check('GET', 200, s)
  check('GET', 429, 0.0001)
  check('POST', 200, 0.02)
  stats.forRoute('/healthz')('GET', 200, 0.0002)

  const text = await registry.metrics()
  const lbl = 'method="GET",route="/consent/check",status="200"'
  t.equal(line(text, new RegExp(`^http_requests_total\\{${lbl}\\} (\\S+)$`, 'm')), seconds.length)
  t.equal(line(text, /^http_requests_total\{method="GET",route="\/consent\/check",status="429"\} (\S+)$/m), 1, 'each status on its own')
  t.equal(line(text, /^http_requests_total\{method="POST",route="\/consent\/check",status="200"\} (\S+)$/m), 1, 'each method on its own')
  t.equal(line(text, /^http_requests_total\{method="GET",route="\/healthz",status="200"\} (\S+)$/m), 1, 'each route on its own')
  // le is inclusive: 0.001 falls in the 0.001 bucket; 42 s only in +Inf.
  for (const le of DURATION_BUCKETS) {
    const want = seconds.filter((s) => s <= le).length
    t.equal(line(text, new RegExp(`^http_request_duration_seconds_bucket\\{le="${le}",${lbl}\\} (\\S+)$`, 'm')), want, `le=${le}`)
  }
  t.equal(line(text, new RegExp(`^http_request_duration_seconds_bucket\\{le="\\+Inf",${lbl}\\} (\\S+)$`, 'm')), seconds.length)
  t.equal(line(text, new RegExp(`^http_request_duration_seconds_count\\{${lbl}\\} (\\S+)$`, 'm')), seconds.length)
  t.ok(Math.abs(line(text, new RegExp(`^http_request_duration_seconds_sum\\{${lbl}\\} (\\S+)$`, 'm'))! - seconds.reduce((a, b) => a + b, 0)) < 1e-9)
  t.match(text, /^# TYPE http_request_duration_seconds histogram$/m)
  t.match(text, /^# TYPE http_requests_total counter$/m)

  const json = await registry.getMetricsAsJSON()
  t.ok(json.some((m) => m.name === 'http_requests_total'), 'the JSON form lists them too')

  registry.resetMetrics()
  const after = await registry.metrics()
  t.equal(line(after, new RegExp(`^http_requests_total\\{${lbl}\\} (\\S+)$`, 'm')), 0, 'reset clears the counts')
  t.equal(line(after, new RegExp(`^http_request_duration_seconds_bucket\\{le="\\+Inf",${lbl}\\} (\\S+)$`, 'm')), 0)
})
