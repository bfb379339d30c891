/**
 * The benchmark suite's result writer and its reading of bench/import.mjs's output (no timings:
 * the benchmarks themselves run with `npm run bench`, never in tests).
 */
import t from 'tap'
import { parseImportOutput, toMarkdown, type BenchResult } from '../../bench/lib/report.mjs'

const fixture: BenchResult = {
  startedAt: '2026-11-30T20:24:06.200Z',
  machine: { cpu: 'AMD EPYC', cores: 2, ramGB: 23.5, os: 'Linux', node: 'v20.20.2', postgres: '15.20', host: 'vm', loadavgStart: [1, 2, 3] },
  settings: { durationS: 10, rounds: 2, warmupS: 3, connections: 10 },
  rows: [
    {
      workload: 'check',
      name: 'GET /consent/check (1 phone)',
      unit: 'req/s',
      value: 1234.4,
      p50: 3,
      p99: 12.34,
      ratio: 0.5,
      rss: { peak: 145.6, hwm: 150.2 },
      baseline: { name: 'bare PK SELECT', value: 2468.8, p50: 1, p99: 4 },
      targets: [
        { text: 'check: >= 80% of bare throughput', measured: '50.0%', met: false },
        { text: 'check: p99 <= 5 ms', measured: '12.34 ms', met: null },
      ],
      notes: ['20,000 contacts'],
    },
    { workload: 'import', name: 'CSV import', unit: 'rows/s', value: 50000, ratio: null, baseline: { name: 'raw COPY', value: null } },
  ],
  skipped: ['scale'],
  errors: [{ workload: 'webhook', message: 'boom' }],
}

t.test('toMarkdown: one table row per measurement, then the targets', async (t) => {
  const md = toMarkdown(fixture)
  const lines = md.split('\n')
  const header = lines.findIndex((l) => l.startsWith('| Workload |'))
  t.ok(header > 0, 'has the results table')
  t.match(lines[header + 1], /^\|(---\|)+$/)
  const check = lines[header + 2]!
  t.equal(check.split('|').length - 2, 8, 'eight cells')
  t.match(check, /\| GET \/consent\/check \(1 phone\) \| 1,234 req\/s \| 3 \/ 12\.3 \| bare PK SELECT: 2,469 req\/s \| 1 \/ 4 \| 50% \| 146 \/ 150 \| 20,000 contacts \|/)
  t.match(lines[header + 3], /\| CSV import \| 50,000 rows\/s \| – \/ – \| raw COPY: – \| – \/ – \| – \| – \|/)
  t.match(md, /\| check: >= 80% of bare throughput \| 50\.0% \| \*\*no\*\* \|/)
  t.match(md, /\| check: p99 <= 5 ms \| 12\.34 ms \| – \|/)
  t.match(md, /AMD EPYC, 2 cores, 23\.5 GB RAM/)
  t.match(md, /Skipped: scale\./)
  t.match(md, /- webhook: boom/)
})

t.test('parseImportOutput reads bench/import.mjs', async (t) => {
  const text = [
    'baseline raw COPY: 2.50 s, 400,000 rows/s',
    "ceiling: the ledger's rows alone (5 set-based INSERT ... SELECT with the ledger's indexes, nothing else): 25.00 s, 40,000 rows/s = 10.0% of raw COPY",
    'import completed: applied 999,000, rejected 1,000, duplicate 0 of 1,000,000',
    'import end to end (upload to completed) | 50,000 rows/s (20.0 s) | raw COPY 400,000 rows/s | 12.5% of raw COPY',
    'upload: parse + COPY to staging + commit | 200,000 rows/s (5.0 s) | raw COPY 400,000 rows/s | 50.0% of raw COPY',
    'processing: batches through ledger.append | 66,667 rows/s (15.0 s) | raw COPY 400,000 rows/s | 16.7% of raw COPY',
    'server RSS: idle 130 MB, peak during upload 136 MB, peak during processing 244 MB, VmHWM 245 MB | file 60 MiB',
  ].join('\n')
  t.same(parseImportOutput(text), {
    endToEndRowsPerS: 50000,
    endToEndS: 20,
    copyRowsPerS: 400000,
    copyS: 2.5,
    uploadRowsPerS: 200000,
    processingRowsPerS: 66667,
    ceilingRowsPerS: 40000,
    ceilingS: 25,
    rss: { idle: 130, uploadPeak: 136, processingPeak: 244, hwm: 245 },
    status: { status: 'completed', applied: 999000, rejected: 1000, duplicate: 0, total: 1000000 },
  })
  t.equal(parseImportOutput('nothing here'), null)
  const json = '{"bench":"import","rows":10,"endToEndRowsPerS":5,"endToEndS":2,"copyRowsPerS":50}'
  t.equal(parseImportOutput(`noise\n${json}\n`)?.copyRowsPerS, 50, 'a JSON line wins')
})
