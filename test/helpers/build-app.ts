/**
 * One helper that returns a ready app on its own fresh PostgreSQL database (cloned from the
 * migrated template), with teardown registered. Config is passed as data, never via process.env.
 */
import type { Test } from 'tap'
import { buildApp, type App } from '../../src/app.js'
import { loadConfig } from '../../src/config/env.js'
import { freshDatabase } from './db.js'

export const ROOT_KEY = 'root-test-key-0123456789abcdef'

export interface TestApp {
  app: App
  url: string
  /** Authorization header of the root key. */
  root: { authorization: string }
}

export async function buildTestApp(t: Pick<Test, 'teardown'>, env: Record<string, string> = {}): Promise<TestApp> {
  const { url } = await freshDatabase(t)
  const config = loadConfig({ DATABASE_URL: url, CONSENT_ADMIN_KEY: ROOT_KEY, LOG_LEVEL: 'silent', DATABASE_POOL_MAX: '12', ...env })
  const app = await buildApp(config)
  t.teardown(() => app.close())
  await app.ready()
  return { app, url, root: { authorization: `Bearer ${ROOT_KEY}` } }
}

/** Create a workspace with an admin key; returns its id and auth header. */
export async function newWorkspace(t: TestApp, name = 'ws'): Promise<{ id: string; auth: { authorization: string } }> {
  const w = await t.app.inject({ method: 'POST', url: '/workspaces', headers: t.root, payload: { name } })
  if (w.statusCode !== 201) throw new Error(`workspace create failed: ${w.body}`)
  const id = w.json().id as string
  const k = await t.app.inject({ method: 'POST', url: `/workspaces/${id}/api-keys`, headers: t.root, payload: { name: 'admin', scopes: ['admin'] } })
  if (k.statusCode !== 201) throw new Error(`key create failed: ${k.body}`)
  return { id, auth: { authorization: `Bearer ${k.json().key}` } }
}

export async function newGroup(
  t: TestApp,
  auth: { authorization: string },
  body: Record<string, unknown> = {},
): Promise<string> {
  const r = await t.app.inject({
    method: 'POST',
    url: '/subscription-groups',
    headers: auth,
    payload: { name: 'Marketing', channel: 'whatsapp', category: 'marketing', ...body },
  })
  if (r.statusCode !== 201) throw new Error(`group create failed: ${r.body}`)
  return r.json().id as string
}
