/**
 * Results of the benchmark suite: the machine description and the Markdown rendering of a results
 * JSON (bench/results/*.json). Pure functions except `describeMachine`.
 */
import os from 'node:os'
import { execFileSync } from 'node:child_process'

export function describeMachine(postgresVersion) {
  const cpus = os.cpus()
  let gitCommit = null
  let gitDirty = null
  try {
    gitCommit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()
    gitDirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'migrations'], { encoding: 'utf8' }).trim() !== ''
  } catch {}
  return {
    host: os.hostname(),
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    ramGB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    postgres: postgresVersion,
    git: { commit: gitCommit, srcDirty: gitDirty },
    loadavgStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  }
}

const int = (n) => (n == null || Number.isNaN(n) ? '–' : Math.round(n).toLocaleString('en-US'))
const ms = (n) => (n == null ? '–' : n >= 100 ? String(Math.round(n)) : String(Math.round(n * 10) / 10))
const pct = (r) => (r == null ? '–' : `${Math.round(r * 1000) / 10}%`)

/** "1,234 req/s" */
export function formatValue(value, unit) {
  return value == null ? '–' : `${int(value)} ${unit}`
}

/** One Markdown table row per measurement, then the targets, the settings and the machine. */
export function toMarkdown(result) {
  const m = result.machine ?? {}
  const s = result.settings ?? {}
  const out = []
  out.push(`# Benchmark results: ${result.startedAt ?? ''}`)
  out.push('')
  out.push(
    `Machine: ${m.cpu ?? '?'}, ${m.cores ?? '?'} cores, ${m.ramGB ?? '?'} GB RAM, ${m.os ?? ''}; Node ${m.node ?? '?'}; PostgreSQL ${m.postgres ?? '?'}` +
      (m.host ? `; host \`${m.host}\`` : '') +
      (m.git?.commit ? `; commit ${m.git.commit}${m.git.srcDirty ? ' (src/ modified)' : ''}` : '') +
      '.',
  )
  out.push(
    `Load average at start ${(m.loadavgStart ?? []).join(' / ')}${m.loadavgEnd ? `, at end ${m.loadavgEnd.join(' / ')}` : ''}. ` +
      `Each workload: ${s.rounds ?? '?'} round(s) of ${s.durationS ?? '?'} s per side, service and baseline alternating, after a ${s.warmupS ?? '?'} s warm-up of each; ` +
      `${s.connections ?? '?'} connections unless the row says otherwise; autocannon, service and PostgreSQL share the machine.`,
  )
  out.push('')
  out.push('| Workload | Service | p50 / p99 ms | Baseline (same run) | Baseline p50 / p99 ms | Ratio | Service RSS peak / HWM MB | Notes |')
  out.push('|---|---|---|---|---|---|---|---|')
  for (const r of result.rows ?? []) {
    const b = r.baseline ?? {}
    out.push(
      `| ${r.name} | ${formatValue(r.value, r.unit)} | ${ms(r.p50)} / ${ms(r.p99)} | ${b.name ? `${b.name}: ${formatValue(b.value, b.unit ?? r.unit)}` : '–'} | ${b.name ? `${ms(b.p50)} / ${ms(b.p99)}` : '–'} | ${pct(r.ratio)} | ${r.rss ? `${int(r.rss.peak)} / ${int(r.rss.hwm)}` : '–'} | ${(r.notes ?? []).join('; ')} |`,
    )
  }
  const targets = (result.rows ?? []).flatMap((r) => (r.targets ?? []).map((t) => ({ ...t, row: r.name })))
  if (targets.length) {
    out.push('')
    out.push('| Target | Measured | Met |')
    out.push('|---|---|---|')
    for (const t of targets) out.push(`| ${t.text} | ${t.measured} | ${t.met == null ? '–' : t.met ? 'yes' : '**no**'} |`)
  }
  if (result.skipped?.length) {
    out.push('')
    out.push(`Skipped: ${result.skipped.join(', ')}.`)
  }
  if (result.errors?.length) {
    out.push('')
    out.push('Errors:')
    for (const e of result.errors) out.push(`- ${e.workload}: ${e.message}`)
  }
  if (result.notes?.length) {
    out.push('')
    for (const n of result.notes) out.push(`- ${n}`)
  }
  return out.join('\n') + '\n'
}

/** Parses bench/import.mjs's output: its JSON line when it prints one (BENCH_JSON=1), else its table. */
export function parseImportOutput(text) {
  for (const line of text.split('\n').reverse()) {
    const t = line.trim()
    if (t.startsWith('{') && t.includes('"rows"')) {
      try {
        const j = JSON.parse(t)
        if (j.endToEndRowsPerS) return j
      } catch {}
    }
  }
  const num = (s) => Number(s.replaceAll(',', ''))
  const e2e = /import end to end[^|]*\|\s*([\d,]+) rows\/s \(([\d.]+) s\)\s*\|\s*(?:raw COPY ([\d,]+) rows\/s)?/.exec(text)
  const copy = /baseline raw COPY: ([\d.]+) s, ([\d,]+) rows\/s/.exec(text)
  const mem = /server RSS: idle (\d+) MB, peak during upload (\d+) MB, peak during processing (\d+) MB, VmHWM (\d+) MB/.exec(text)
  const status = /import (completed|failed): applied ([\d,]+), rejected ([\d,]+), duplicate ([\d,]+) of ([\d,]+)/.exec(text)
  const upload = /upload: parse \+ COPY to staging \+ commit \|\s*([\d,]+) rows\/s/.exec(text)
  const processing = /processing: batches through ledger.append \|\s*([\d,]+) rows\/s/.exec(text)
  const ceiling = /ceiling: the ledger's rows alone[^:]*: ([\d.]+) s, ([\d,]+) rows\/s/.exec(text)
  if (!e2e) return null
  return {
    endToEndRowsPerS: num(e2e[1]),
    endToEndS: Number(e2e[2]),
    copyRowsPerS: copy ? num(copy[2]) : e2e[3] ? num(e2e[3]) : null,
    copyS: copy ? Number(copy[1]) : null,
    uploadRowsPerS: upload ? num(upload[1]) : null,
    processingRowsPerS: processing ? num(processing[1]) : null,
    ceilingRowsPerS: ceiling ? num(ceiling[2]) : null,
    ceilingS: ceiling ? Number(ceiling[1]) : null,
    rss: mem ? { idle: Number(mem[1]), uploadPeak: Number(mem[2]), processingPeak: Number(mem[3]), hwm: Number(mem[4]) } : null,
    status: status ? { status: status[1], applied: num(status[2]), rejected: num(status[3]), duplicate: num(status[4]), total: num(status[5]) } : null,
  }
}

