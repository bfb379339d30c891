/**
 * `consent-ledger import <file.csv>`: streams a file to a running service (POST /imports), shows a
 * progress bar on stderr (bytes sent, then rows processed from GET /imports/{id}), and prints the
 * final report (the import as JSON) on stdout. The key comes from `--key` or CONSENT_API_KEY (a
 * client setting, not the service's configuration). Exit code 0 when the import completed, 1 when
 * it failed or the service refused the upload, 64 on bad usage.
 */
import { createReadStream, createWriteStream, statSync } from 'node:fs'
import { request } from 'node:http'
import { request as requestTls } from 'node:https'
import { Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { parseArgs } from 'node:util'

export const IMPORT_USAGE =
  'usage: consent-ledger import <file.csv> [--url http://localhost:3000] [--key KEY] [--subscription-group-id ID] ' +
  '[--subscription-state subscribed|unsubscribed] [--source-label TEXT] [--idempotency-key KEY] [--errors errors.csv] [--no-wait]'

interface Report {
  id: string
  status: string
  rows_total: number
  rows_processed: number
  rows_applied: number
  rows_rejected: number
  rows_duplicate: number
  rows_per_second: number | null
  error: string | null
}

const fmt = (n: number) => n.toLocaleString('en-US')
const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`

function progress(stream: NodeJS.WriteStream) {
  const tty = stream.isTTY === true
  let lastLine = 0
  let lastPct = -1
  return {
    show(fraction: number, text: string) {
      const pct = Math.min(100, Math.floor(fraction * 100))
      if (tty) {
        const width = 30
        const full = Math.round((pct / 100) * width)
        stream.write(`\r[${'#'.repeat(full)}${'-'.repeat(width - full)}] ${String(pct).padStart(3)}% ${text}\u001b[K`)
      } else if (pct >= lastPct + 10 || Date.now() - lastLine > 5000) {
        stream.write(`${String(pct).padStart(3)}% ${text}\n`)
        lastPct = pct
        lastLine = Date.now()
      }
    },
    done() {
      if (tty) stream.write('\n')
      lastPct = -1
    },
  }
}

interface ImportArgs {
  file: string
  size: number
  key: string
  base: URL
  query: URLSearchParams
  idempotencyKey?: string
  errors?: string
  noWait: boolean
}

/** The command line, or the exit code of a bad one (64 usage, 66 unreadable file). */
function parseImportArgs(args: string[], env: NodeJS.ProcessEnv): ImportArgs | number {
  let values: Record<string, string | boolean | undefined>
  let positionals: string[]
  try {
    ;({ values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        url: { type: 'string', default: 'http://localhost:3000' },
        key: { type: 'string' },
        'subscription-group-id': { type: 'string' },
        'subscription-state': { type: 'string' },
        'source-label': { type: 'string' },
        'idempotency-key': { type: 'string' },
        errors: { type: 'string' },
        'no-wait': { type: 'boolean', default: false },
      },
    }))
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${IMPORT_USAGE}\n`)
    return 64
  }
  const file = positionals[0]
  const key = (values.key as string | undefined) ?? env.CONSENT_API_KEY
  if (!file || positionals.length > 1 || !key) {
    process.stderr.write(`${!key ? 'an API key is required: --key or CONSENT_API_KEY\n' : ''}${IMPORT_USAGE}\n`)
    return 64
  }
  let size: number
  try {
    size = statSync(file).size
  } catch (err) {
    process.stderr.write(`cannot read ${file}: ${(err as Error).message}\n`)
    return 66
  }
  const query = new URLSearchParams()
  for (const [opt, param] of [
    ['subscription-group-id', 'subscription_group_id'],
    ['subscription-state', 'subscription_state'],
    ['source-label', 'source_label'],
  ] as const) {
    const v = values[opt]
    if (typeof v === 'string') query.set(param, v)
  }
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined)
  return {
    file,
    size,
    key,
    base: new URL(values.url as string),
    query,
    idempotencyKey: str(values['idempotency-key']),
    errors: str(values.errors),
    noWait: values['no-wait'] === true,
  }
}

/** POST /imports, streamed from disk; the bar follows the bytes handed to the socket. */
function upload(a: ImportArgs, bar: ReturnType<typeof progress>): Promise<{ status: number; body: string }> {
  const target = new URL(`/imports${a.query.size ? `?${a.query}` : ''}`, a.base)
  const headers: Record<string, string> = { authorization: `Bearer ${a.key}`, 'content-type': 'text/csv', 'content-length': String(a.size) }
  if (a.idempotencyKey !== undefined) headers['idempotency-key'] = a.idempotencyKey
  let sent = 0
  const counter = new Transform({
    transform(chunk: Buffer, _e, cb) {
      sent += chunk.length
      bar.show(a.size === 0 ? 1 : sent / a.size, `${mib(sent)} / ${mib(a.size)} uploaded`)
      cb(null, chunk)
    },
  })
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = (target.protocol === 'https:' ? requestTls : request)(target, { method: 'POST', headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    // The service may answer (409, 4xx) before the whole file is sent: that answer counts.
    pipeline(createReadStream(a.file, { highWaterMark: 1 << 20 }), counter, req).catch(() => {})
  })
}

/** GET on the service with the command's key; a non-2xx answer throws. */
function getter(a: ImportArgs) {
  return async (path: string) => {
    const r = await fetch(new URL(path, a.base), { headers: { authorization: `Bearer ${a.key}` } })
    if (!r.ok) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`)
    return r
  }
}

/** Polls the import until it completes or fails (once only with --no-wait), showing rows processed. */
async function follow(a: ImportArgs, id: string, bar: ReturnType<typeof progress>): Promise<Report> {
  const get = getter(a)
  let report = (await (await get(`/imports/${id}`)).json()) as Report
  while (!a.noWait && report.status !== 'completed' && report.status !== 'failed') {
    await new Promise((r) => setTimeout(r, 500))
    try {
      report = (await (await get(`/imports/${id}`)).json()) as Report
    } catch (err) {
      // A restart of the service: the import resumes there; keep polling.
      process.stderr.write(`\n${(err as Error).message}; retrying\n`)
      continue
    }
    const total = report.rows_total || 1
    bar.show(
      report.rows_processed / total,
      `${fmt(report.rows_processed)} / ${fmt(report.rows_total)} rows (applied ${fmt(report.rows_applied)}, rejected ${fmt(report.rows_rejected)}, duplicate ${fmt(report.rows_duplicate)})`,
    )
  }
  bar.done()
  return report
}

/** Refused rows: written to --errors FILE, or the URL to fetch them from. */
async function reportRefused(a: ImportArgs, id: string, report: Report): Promise<void> {
  const refused = report.rows_rejected + report.rows_duplicate
  if (refused === 0) return
  if (a.errors !== undefined) {
    const r = await getter(a)(`/imports/${id}/errors`)
    await pipeline(Readable.fromWeb(r.body as import('node:stream/web').ReadableStream), createWriteStream(a.errors))
    process.stderr.write(`${fmt(refused)} refused rows written to ${a.errors}\n`)
  } else {
    process.stderr.write(`${fmt(refused)} rows refused: GET ${new URL(`/imports/${id}/errors`, a.base)} (or --errors FILE)\n`)
  }
}

export async function runImportCommand(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const a = parseImportArgs(args, env)
  if (typeof a === 'number') return a
  const bar = progress(process.stderr)
  const started = Date.now()
  let answer: { status: number; body: string }
  try {
    answer = await upload(a, bar)
  } catch (err) {
    bar.done()
    process.stderr.write(`upload failed: ${(err as Error).message}\n`)
    return 1
  }
  bar.done()
  if (answer.status !== 202) {
    process.stderr.write(`the service refused the file (${answer.status}): ${answer.body}\n`)
    return 1
  }
  const accepted = JSON.parse(answer.body) as { id: string; status: string; rows_total: number }
  process.stderr.write(
    `stored as import ${accepted.id}: ${fmt(accepted.rows_total)} rows, ${mib(a.size)} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  )
  const report = await follow(a, accepted.id, bar)
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`)
  await reportRefused(a, accepted.id, report)
  return report.status === 'failed' ? 1 : 0
}
