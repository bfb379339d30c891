/** Helpers of the import route tests: upload, wait for the worker, read the error report. */
import type { Readable } from 'node:stream'
import type { TestApp } from '../../helpers/build-app.js'

export type Auth = { authorization: string }

export async function upload(ta: TestApp, auth: Auth, csv: string | Buffer | Readable, query = '', headers: Record<string, string> = {}) {
  return ta.app.inject({
    method: 'POST',
    url: `/imports${query}`,
    headers: { ...auth, 'content-type': 'text/csv', ...headers },
    payload: csv,
  })
}

/** Polls GET /imports/{id} until the import finishes (the in-process worker runs it). */
export async function waitDone(ta: TestApp, auth: Auth, id: string, timeoutMs = 60_000) {
  const until = Date.now() + timeoutMs
  for (;;) {
    const r = await ta.app.inject({ url: `/imports/${id}`, headers: auth })
    const body = r.json()
    if (body.status === 'completed' || body.status === 'failed') return body
    if (Date.now() > until) throw new Error(`import ${id} still ${body.status} after ${timeoutMs} ms`)
    await new Promise((res) => setTimeout(res, 50))
  }
}

export async function errorsCsv(ta: TestApp, auth: Auth, id: string): Promise<string> {
  const r = await ta.app.inject({ url: `/imports/${id}/errors`, headers: auth })
  if (r.statusCode !== 200) throw new Error(`errors: ${r.statusCode} ${r.body}`)
  return r.body
}

export async function importAndWait(ta: TestApp, auth: Auth, csv: string | Buffer, query = '') {
  const r = await upload(ta, auth, csv, query)
  if (r.statusCode !== 202) throw new Error(`upload: ${r.statusCode} ${r.body}`)
  return waitDone(ta, auth, r.json().id)
}
