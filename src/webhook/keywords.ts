/**
 * Keyword rules (docs/webhook.md "Default keywords"): normalisation and matching, pure (no database, no Fastify).
 *
 * Normalisation of a message (and of a rule's keyword, which is stored in this form, upper-case):
 *   Unicode NFKC (full-width "ＳＴＯＰ" is STOP), trim, drop SURROUNDING punctuation, symbols and
 *   emoji (incl. variation selectors, ZWJ, keycaps, skin tones, flags), collapse inner white space
 *   to one space, upper-case. So "STOP.", " stop ", "Stop 🛑", "*STOP*" match STOP; inner characters
 *   are kept, so "don't stop" is "DON'T STOP" and does not match STOP.
 *
 * Matching compares without accents (keywordKey: ARRÊT and ARRET, إيقاف and ايقاف are one keyword):
 *   - `exact` (default): the whole normalised message equals a rule's keyword.
 *   - `lenient`: additionally, a FREE-TEXT message of at most 4 words that contains an opt-out
 *     keyword as a whole-word sequence ("please stop", "stop it now") is that opt-out. The longest
 *     contained keyword wins ("STOP PROMOTIONS please" is STOP PROMOTIONS, marketing only). Lenient
 *     never applies to opt-in rules (writing to a business is not consent) nor to button payloads or
 *     titles (the business wrote those: a "Don't stop" button must not opt anyone out).
 *   - Candidates are tried in order (a template button: `payload` then `text`; an interactive
 *     reply: `id` then `title`), and the first candidate that matches decides.
 */

export type KeywordAction = 'opt_out' | 'opt_in'
/** `all`: every WhatsApp group of the workspace; `marketing`: its marketing groups; or group ids. */
export type KeywordScope = 'all' | 'marketing' | string[]

export interface KeywordRule {
  keyword: string
  action: KeywordAction
  scope: KeywordScope
}

export interface KeywordSettings {
  /** Master toggle: false = inbound messages record nothing (Meta's own signals still apply). */
  enabled: boolean
  mode: 'exact' | 'lenient'
  rules: KeywordRule[]
}

export const LENIENT_MAX_WORDS = 4
export const KEYWORD_MAX_LENGTH = 64
export const MAX_RULES = 200

const optOutAll = ['STOP', 'STOPALL', 'STOP ALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT', 'REVOKE', 'OPTOUT', 'OPT OUT']

/**
 * Stop words of WhatsApp's largest markets (the list and why each word is in or out:
 * docs/webhook.md, "Default keywords"). Only words whose whole-message meaning is "stop sending
 * me messages"; words for "cancel" (an order, a booking) are left out: a false opt-out is harm too.
 */
const optOutAllMarkets = [
  'PARAR', // es, pt
  'BAJA', // es
  'DAR DE BAJA', // es
  'DESCADASTRAR', // pt-BR
  'ARRÊT', // fr (matches ARRET)
  'DÉSABONNER', // fr
  'STOPP', // de, sv, no, da
  'ABMELDEN', // de
  'BERHENTI', // id, ms
  'СТОП', // ru, uk, bg (Cyrillic)
  'ОТПИСАТЬСЯ', // ru
  'إيقاف', // ar (matches ايقاف)
  'إلغاء الاشتراك', // ar: "cancel the subscription"
]
/** Also "leave (this chat menu)" / "enough": marketing only, so a bot conversation keeps its service messages. */
const optOutMarketingMarkets = [
  'SAIR', // pt
  'BASTA', // it, es
]
/** Start words; a restore gives back only what the person's own opt-outs took away. */
const optInMarkets = [
  'ALTA', // es (the counterpart of BAJA)
  'INICIAR', // es, pt
  'DÉMARRER', // fr
]

/** The defaults (docs/webhook.md "Default keywords"), used while a workspace has stored none. */
export const DEFAULT_KEYWORD_SETTINGS: KeywordSettings = Object.freeze({
  enabled: true,
  mode: 'exact',
  rules: [
    ...optOutAll.map((keyword) => ({ keyword, action: 'opt_out' as const, scope: 'all' as const })),
    // The label of WhatsApp's own marketing opt-out quick-reply button.
    { keyword: 'STOP PROMOTIONS', action: 'opt_out' as const, scope: 'marketing' as const },
    { keyword: 'START', action: 'opt_in' as const, scope: 'all' as const },
    { keyword: 'UNSTOP', action: 'opt_in' as const, scope: 'all' as const },
    ...optOutAllMarkets.map((keyword) => ({ keyword, action: 'opt_out' as const, scope: 'all' as const })),
    ...optOutMarketingMarkets.map((keyword) => ({ keyword, action: 'opt_out' as const, scope: 'marketing' as const })),
    ...optInMarkets.map((keyword) => ({ keyword, action: 'opt_in' as const, scope: 'all' as const })),
  ],
}) as KeywordSettings

// White space, punctuation, symbols (emoji are \p{So}, skin tones \p{Sk}), controls, format
// characters (ZWJ, zero-width space), and the emoji presentation selectors and keycap mark.
const EDGE_CLASS = String.raw`[\s\p{P}\p{S}\p{Z}\p{Cc}\p{Cf}\u{FE0E}\u{FE0F}\u{20E3}]+`
const LEADING = new RegExp(`^${EDGE_CLASS}`, 'u')
const TRAILING = new RegExp(`${EDGE_CLASS}$`, 'u')
const INNER_SPACE = /[\s\p{Z}]+/gu

function stripEdges(s: string): string {
  return s.replace(LEADING, '').replace(TRAILING, '')
}

/** The normalised form of a message or keyword (see the header). Empty when nothing is left. */
export function normalizeKeywordText(input: string): string {
  if (typeof input !== 'string') return ''
  return stripEdges(input.normalize('NFKC')).replace(INNER_SPACE, ' ').toUpperCase()
}

// Latin accents (combining diacritical marks) and Arabic short vowels, tatweel and the hamza and
// madda carried by alef, seen after canonical decomposition.
const MARKS = /[\u0300-\u036f\u0640\u064b-\u065f\u0670]/g

/**
 * The form keywords are compared in: the normalised text without accents ("ARRÊT" is "ARRET",
 * "إيقاف" is "ايقاف"), as people type them either way. Stored keywords keep their accents.
 */
export function keywordKey(normalized: string): string {
  return normalized.normalize('NFD').replace(MARKS, '').normalize('NFC')
}

/** Rules by comparison key (first rule wins), and their words for lenient mode; per rules array. */
const compiled = new WeakMap<KeywordRule[], { byKey: Map<string, KeywordRule>; words: [KeywordRule, string[]][] }>()
function compile(rules: KeywordRule[]) {
  let c = compiled.get(rules)
  if (!c) {
    const byKey = new Map<string, KeywordRule>()
    const words: [KeywordRule, string[]][] = []
    for (const r of rules) {
      const key = keywordKey(normalizeKeywordText(r.keyword))
      if (!byKey.has(key)) byKey.set(key, r)
      if (r.action === 'opt_out') words.push([r, wordsOf(key)])
    }
    c = { byKey, words }
    compiled.set(rules, c)
  }
  return c
}

/** Words of a normalised text, each without surrounding punctuation ("STOP," is STOP). */
function wordsOf(normalized: string): string[] {
  return normalized
    .split(' ')
    .map(stripEdges)
    .filter((w) => w.length > 0)
}

function containsSequence(haystack: string[], needle: string[]): boolean {
  if (needle.length === 0 || needle.length > haystack.length) return false
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer
    return true
  }
  return false
}

/** One text a message offers for matching, in priority order. */
export interface MatchCandidate {
  /** Where it came from (`text.body`, `button.payload`, `interactive.button_reply.title`, ...). */
  field: string
  value: string
  /** Typed by the person (lenient mode may apply), as opposed to a button the business wrote. */
  free: boolean
}

export interface KeywordMatch {
  rule: KeywordRule
  field: string
  /** The normalised text that matched. */
  text: string
  how: 'exact' | 'lenient'
}

/** The rule a message triggers, or null (a message that matches nothing records nothing). */
export function matchKeyword(settings: KeywordSettings, candidates: MatchCandidate[]): KeywordMatch | null {
  if (!settings.enabled) return null
  const rules = compile(settings.rules)
  for (const c of candidates) {
    const text = normalizeKeywordText(c.value)
    if (text.length === 0) continue
    const key = keywordKey(text)
    const exact = rules.byKey.get(key)
    if (exact) return { rule: exact, field: c.field, text, how: 'exact' }
    if (settings.mode === 'lenient' && c.free) {
      const words = wordsOf(key)
      if (words.length === 0 || words.length > LENIENT_MAX_WORDS) continue
      let best: KeywordRule | undefined
      let bestLen = 0
      for (const [r, kw] of rules.words) {
        if (kw.length > bestLen && containsSequence(words, kw)) {
          best = r
          bestLen = kw.length
        }
      }
      if (best) return { rule: best, field: c.field, text, how: 'lenient' }
    }
  }
  return null
}

export interface SettingsProblem {
  pointer: string
  code: string
  message: string
}

/**
 * Validates and normalises settings given through the API: keywords to their stored form
 * (normalised, upper-case), scope lists lower-cased and de-duplicated. Group ids are checked
 * against the workspace by the caller (keyword-settings-repository.ts).
 */
export function normalizeKeywordSettings(input: KeywordSettings): { settings: KeywordSettings; problems: SettingsProblem[] } {
  const problems: SettingsProblem[] = []
  const seen = new Map<string, number>()
  const rules = input.rules.map((r, i) => {
    const keyword = normalizeKeywordText(r.keyword)
    if (keyword.length === 0) {
      problems.push({ pointer: `/body/rules/${i}/keyword`, code: 'invalid_keyword', message: 'the keyword is empty once punctuation, emoji and white space are dropped' })
    } else if (keyword.length > KEYWORD_MAX_LENGTH) {
      problems.push({ pointer: `/body/rules/${i}/keyword`, code: 'invalid_keyword', message: `the keyword is longer than ${KEYWORD_MAX_LENGTH} characters` })
    } else if (seen.has(keywordKey(keyword))) {
      problems.push({ pointer: `/body/rules/${i}/keyword`, code: 'duplicate_keyword', message: `${keyword} is already rule ${seen.get(keywordKey(keyword))} (accents aside)` })
    } else seen.set(keywordKey(keyword), i)
    const scope: KeywordScope = Array.isArray(r.scope) ? [...new Set(r.scope.map((g) => g.toLowerCase()))] : r.scope
    return { keyword, action: r.action, scope }
  })
  return { settings: { enabled: input.enabled, mode: input.mode, rules }, problems }
}
