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

/**
 * A phone that Meta vouches for (a WhatsApp `wa_id`) but libphonenumber does not accept as valid
 * (a new or unlisted range): `+<digits>` when the digits are a possible international number (no
 * leading 0, 8 to 15 digits, ITU-T E.164's length). Null otherwise. Used only where the number came
 * from Meta, and for lookups, so that an opt-out is never lost for a formatting reason
 * (docs/webhook.md, "Phones that fail validation").
 */
export function possiblePhone(input: string): string | null {
  if (typeof input !== 'string') return null
  const digits = input.trim().replace(/^\+/, '')
  return /^[1-9]\d{7,14}$/.test(digits) ? `+${digits}` : null
}

/** A phone to look up: its E.164 form, else a possible number as stored from Meta (see above). */
export function lookupPhone(input: string): string | null {
  return normalizePhone(input) ?? possiblePhone(input)
}

const BSUID = /^[A-Z]{2}\.[0-9A-Za-z]{1,64}$/

/** `unverified`: a phone Meta vouches for, accepted when it is only a possible number (possiblePhone). */
export function normalizeIdentity(type: IdentityType, raw: string, unverified = false): string | null {
  // NUL cannot be stored; an unpaired surrogate would be stored as U+FFFD, so two distinct ids would
  // become one identity and the stored value would differ from the hashed one. Refused for every
  // type, even where a phone parser would skip the character (docs/input-rules.md).
  if (typeof raw !== 'string' || unstorable(raw) !== undefined) return null
  switch (type) {
    case 'phone':
      return normalizePhone(raw) ?? (unverified ? possiblePhone(raw) : null)
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
