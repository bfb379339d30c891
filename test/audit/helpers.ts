/** Shared helpers of the audit tests: a signing key, an auditor key, appends through the ledger. */
import { generateKeyPairSync } from 'node:crypto'
import type { TestApp } from '../helpers/build-app.js'
import type { AppendItem } from '../../src/ledger/types.js'

/** A fresh Ed25519 key as PKCS#8 PEM (what CHECKPOINT_SIGNING_KEY takes). */
export function newSigningKeyPem(): string {
  return generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
}

/** An API key of the workspace with the given scopes; returns its auth header. */
export async function keyWith(ta: TestApp, auth: { authorization: string }, scopes: string[], name = 'k'): Promise<{ authorization: string }> {
  const r = await ta.app.inject({ method: 'POST', url: '/api-keys', headers: auth, payload: { name, scopes } })
  if (r.statusCode !== 201) throw new Error(`key create failed: ${r.body}`)
  return { authorization: `Bearer ${r.json().key}` }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Append through the one append path, failing loudly on a rejected item. */
export async function append(ta: TestApp, workspaceId: string, items: AppendItem[], actor = 'test') {
  const res = await ta.app.ledger.append(ta.app.database.sql, { workspaceId, actor }, items)
  for (const r of res) if (r.status === 'rejected') throw new Error(`append rejected: ${r.code} ${r.message}`)
  return res
}

export const phoneItem = (phone: string, group: string, state: 'subscribed' | 'unsubscribed', extra: Partial<AppendItem> = {}): AppendItem => ({
  identities: [{ type: 'phone', value: phone }],
  subscriptionGroupId: group,
  state,
  source: 'api',
  ...extra,
})
