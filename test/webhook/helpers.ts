/**
 * Helpers for the WhatsApp webhook tests: Meta's example payloads (test/fixtures/meta-*.json, copied
 * from Meta's documentation), textual edits that keep every other byte as it is (the fixture README:
 * Meta's example ids repeat across files, so tests give each payload its own ids), and signing.
 * Edits are string replacements on the file text, never a re-serialisation: what is signed and
 * sent is exactly the edited bytes.
 */
import { readFileSync } from 'node:fs'
import type { App } from '../../src/app.js'
import { sign } from '../../src/webhook/signature.js'

export const SECRET = 'test-app-secret-current'
export const OLD_SECRET = 'test-app-secret-previous'
export const VERIFY_TOKEN = 'verify-token-for-tests'
/** Config for buildTestApp: two secrets (rotation) and a verify token. */
export const WEBHOOK_ENV = { WHATSAPP_APP_SECRETS: `${OLD_SECRET}, ${SECRET}`, WHATSAPP_VERIFY_TOKEN: VERIFY_TOKEN }

/** The business number and the person in every Meta fixture. */
export const FIXTURE_PNID = '106540352242922'
export const FIXTURE_WA_ID = '16505551234'
export const BSUID = 'US.13491208655302741918'

export const META_FIXTURES = [
  'meta-text.json',
  'meta-button.json',
  'meta-button-stop-promotions.json',
  'meta-interactive-button-reply.json',
  'meta-interactive-list-reply.json',
  'meta-status-sent.json',
  'meta-status-failed-131049.json',
  'meta-status-failed-131050.json',
  'meta-user-preferences-stop.json',
  'meta-user-preferences-resume.json',
] as const
export type MetaFixture = (typeof META_FIXTURES)[number]

/** The exact text of a fixture file. */
export function fixture(name: string): string {
  return readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8')
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** Appends `.<tag>` to every `wamid.*` id (message, context and status ids), consistently. */
export function tagIds(raw: string, tag: string): string {
  return raw.replace(/"(wamid\.[^"]*)"/g, `"$1.${tag}"`)
}

/** Sets every `timestamp` (string seconds in messages/statuses, integer in user_preferences). */
export function setTimestamp(raw: string, secs: number): string {
  return raw.replace(/("timestamp"\s*:\s*)"\d+"/g, `$1"${secs}"`).replace(/("timestamp"\s*:\s*)(\d+)/g, `$1${secs}`)
}

/** Replaces the person's wa_id everywhere (from, contacts, recipient_id, user_preferences). */
export function setWaId(raw: string, waId: string, from: string = FIXTURE_WA_ID): string {
  return raw.replaceAll(from, waId)
}

/** Sets the business number. */
export function setPnid(raw: string, pnid: string): string {
  return raw.replaceAll(FIXTURE_PNID, pnid)
}

/**
 * The BSUID-only variant (users with WhatsApp usernames, since April 2026): `from` →
 * `from_user_id`, `contacts[].wa_id` and `user_preferences[].wa_id` → `user_id`, `recipient_id` →
 * `recipient_user_id`; no phone left.
 */
export function bsuidOnly(raw: string, bsuid: string = BSUID, waId: string = FIXTURE_WA_ID): string {
  const w = escapeRe(waId)
  return raw
    .replace(new RegExp(`"from"(\\s*:\\s*)"${w}"`, 'g'), `"from_user_id"$1"${bsuid}"`)
    .replace(new RegExp(`"wa_id"(\\s*:\\s*)"${w}"`, 'g'), `"user_id"$1"${bsuid}"`)
    .replace(new RegExp(`"recipient_id"(\\s*:\\s*)"${w}"`, 'g'), `"recipient_user_id"$1"${bsuid}"`)
}

/** Both identities: a `user_id` beside every `wa_id`, `recipient_user_id` beside `recipient_id`. */
export function withBsuid(raw: string, bsuid: string = BSUID, waId: string = FIXTURE_WA_ID): string {
  const w = escapeRe(waId)
  return raw
    .replace(new RegExp(`("wa_id"\\s*:\\s*"${w}")`, 'g'), `$1, "user_id": "${bsuid}"`)
    .replace(new RegExp(`("recipient_id"\\s*:\\s*"${w}")`, 'g'), `$1, "recipient_user_id": "${bsuid}"`)
}

/** Sets the text of a text message. */
export function setText(raw: string, text: string): string {
  return raw.replace(/("body"\s*:\s*)"(?:[^"\\]|\\.)*"/, `$1${JSON.stringify(text)}`)
}

/** A text message payload for `waId` with its own id and timestamp. */
export function textMessage(text: string, opts: { id: string; ts: number; waId?: string; pnid?: string; bsuid?: string; bsuidOnly?: boolean }): string {
  let raw = setTimestamp(setText(fixture('meta-text.json'), text), opts.ts)
  raw = tagIds(raw, opts.id)
  if (opts.waId) raw = setWaId(raw, opts.waId)
  if (opts.pnid) raw = setPnid(raw, opts.pnid)
  if (opts.bsuidOnly) raw = bsuidOnly(raw, opts.bsuid, opts.waId)
  else if (opts.bsuid) raw = withBsuid(raw, opts.bsuid, opts.waId)
  return raw
}

/** A fixture with its own ids (and optionally its own person, number and time). */
export function variant(name: MetaFixture, opts: { id: string; ts?: number; waId?: string; pnid?: string; bsuid?: string; bsuidOnly?: boolean }): string {
  let raw = tagIds(fixture(name), opts.id)
  if (opts.ts !== undefined) raw = setTimestamp(raw, opts.ts)
  if (opts.waId) raw = setWaId(raw, opts.waId)
  if (opts.pnid) raw = setPnid(raw, opts.pnid)
  if (opts.bsuidOnly) raw = bsuidOnly(raw, opts.bsuid, opts.waId)
  else if (opts.bsuid) raw = withBsuid(raw, opts.bsuid, opts.waId)
  return raw
}

/** POSTs exact bytes to the webhook, signed with `secret` (null: no signature header). */
export function postWebhook(app: App, raw: string | Buffer, secret: string | null = SECRET, extraHeaders: Record<string, string> = {}) {
  const body = Buffer.isBuffer(raw) ? raw : Buffer.from(raw, 'utf8')
  const headers: Record<string, string> = { 'content-type': 'application/json', ...extraHeaders }
  if (secret !== null) headers['x-hub-signature-256'] = sign(body, secret)
  return app.inject({ method: 'POST', url: '/webhooks/whatsapp', headers, payload: body })
}

/** POSTs and expects 200; returns the ack. */
export async function deliver(app: App, raw: string | Buffer): Promise<{ inbox_id: string; status: string }> {
  const r = await postWebhook(app, raw)
  if (r.statusCode !== 200) throw new Error(`webhook answered ${r.statusCode}: ${r.body}`)
  return r.json()
}

/** Maps a number to a workspace through the API. */
export async function mapNumber(app: App, auth: { authorization: string }, phoneNumberId: string = FIXTURE_PNID) {
  const r = await app.inject({ method: 'POST', url: '/whatsapp/numbers', headers: auth, payload: { phone_number_id: phoneNumberId } })
  if (r.statusCode !== 201 && r.statusCode !== 200) throw new Error(`mapping failed: ${r.statusCode} ${r.body}`)
  return r
}

/** Deterministic Fisher-Yates with a seeded PRNG (mulberry32), so a failure reproduces. */
export function shuffle<T>(xs: T[], seed: number): T[] {
  let a = seed >>> 0
  const rand = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const out = [...xs]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}
