/**
 * A scenario's stack: its own PostgreSQL cluster (one database `consent`), optionally its own
 * Redis, and the service pointed at them, with a WhatsApp marketing group whose number is mapped to
 * the root key's workspace. Torn down (every PID killed, directories removed) when the test ends,
 * whatever happened.
 */
import type { Test } from 'tap'
import { migratePostgres } from '../../src/db/migrate.js'
import { ROOT_KEY, PgCluster, RedisServer, scenarioDir, Service, stopAll, type ClusterOptions } from './processes.js'

export const DATABASE = 'consent'
export const PNID = '990000000000001'
export const AUTH = { authorization: `Bearer ${ROOT_KEY}` }

export interface Stack {
  dir: string
  cluster: PgCluster
  redis?: RedisServer
  service: Service
  group: string
  env: Record<string, string | undefined>
  databaseUrl: string
}

export function databaseUrlOf(host: { port: number }): string {
  return `postgres://postgres@127.0.0.1:${host.port}/${DATABASE}`
}

/**
 * Prints one figures line, `faults: <scenario> k=v ...`: on stderr, which tap passes through
 * whatever its reporter (CI greps it from there), and as a TAP comment.
 */
export function figures(t: Test, scenario: string, values: [string, number | string][]): string {
  // Pairs, not an object: an object would list integer-like keys ("503") first.
  const line = `faults: ${scenario} ${values.map(([k, v]) => `${k}=${v}`).join(' ')}`
  process.stderr.write(`${line}\n`)
  t.comment(line)
  return line
}

export async function startStack(
  t: Test,
  name: string,
  opts: { redis?: boolean; env?: Record<string, string | undefined>; cluster?: ClusterOptions; databasePort?: number } = {},
): Promise<Stack> {
  t.teardown(() => stopAll())
  const dir = scenarioDir(name)
  const cluster = await PgCluster.init(dir, 'primary', opts.cluster)
  await cluster.start()
  await cluster.query(`CREATE DATABASE ${DATABASE}`)
  // `serve` does not migrate (a deployment runs `migrate` first, as the Docker image does).
  await migratePostgres(databaseUrlOf(cluster))
  const redis = opts.redis ? await RedisServer.start() : undefined
  // The service may reach the database through something else (the failover proxy).
  const databaseUrl = databaseUrlOf({ port: opts.databasePort ?? cluster.port })
  const env = { DATABASE_URL: databaseUrl, REDIS_URL: redis?.url, ...opts.env }
  const service = await Service.start(env)
  const group = await api(service.base, 'POST', '/subscription-groups', { name: 'Promotions', channel: 'whatsapp', category: 'marketing' })
  await api(service.base, 'POST', '/whatsapp/numbers', { phone_number_id: PNID })
  return { dir, cluster, redis, service, group: (group as { id: string }).id, env, databaseUrl }
}

/** A setup call as the root key; throws on anything but 2xx. */
export async function api(base: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { ...AUTH, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await r.text()
  if (r.status < 200 || r.status >= 300) throw new Error(`${method} ${path} answered ${r.status}: ${text}`)
  return text ? JSON.parse(text) : undefined
}
