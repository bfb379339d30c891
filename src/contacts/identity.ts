/**
 * Identities: external_id, phone (E.164 via libphonenumber-js) and bsuid (Meta's business-scoped
 * user id). A WhatsApp `wa_id` (`16505551234`, no plus) is the same phone as `+16505551234`.
 */
import { parsePhoneNumberFromString } from 'libphonenumber-js/max'
import { unstorable } from '../input/storable.js'

export type IdentityType = 'external_id' | 'phone' | 'bsuid'
export const IDENTITY_TYPES: IdentityType[] = ['external_id', 'phone', 'bsuid']

export interface Identity {
  type: IdentityType
  value: string
}

/** E.164 of a phone given as `+…`, as digits with a country code (wa_id), or with separators. Null if invalid. */
export function normalizePhone(input: string): string | null {
  if (typeof input !== 'string') return null
  const trimmed = input.trim()
  if (trimmed.length === 0 || trimmed.length > 40) return null
  // Digits-only input is how WhatsApp writes wa_id: international format without the plus.
  const candidate = /^[\d\s().-]+$/.test(trimmed) ? `+${trimmed.replace(/\D/g, '')}` : trimmed.replace(/^00/, '+')
  const parsed = parsePhoneNumberFromString(candidate)
  if (!parsed || !parsed.isValid()) return null
  return parsed.number
}

const BSUID = /^[A-Z]{2}\.[0-9A-Za-z]{1,64}$/

export function normalizeIdentity(type: IdentityType, raw: string): string | null {
  // NUL cannot be stored; an unpaired surrogate would be stored as U+FFFD, so two distinct ids would
  // become one identity and the stored value would differ from the hashed one. Refused for every
  // type, even where a phone parser would skip the character (docs/input-rules.md).
  if (typeof raw !== 'string' || unstorable(raw) !== undefined) return null
  switch (type) {
    case 'phone':
      return normalizePhone(raw)
    case 'bsuid': {
      const v = raw.trim()
      return BSUID.test(v) ? v : null
    }
    case 'external_id': {
      const v = raw.trim()
      return v.length > 0 && v.length <= 512 ? v : null
    }
  }
}
