/** Keyword normalisation and matching (docs/webhook.md), pure. */
import t from 'tap'
import {
  DEFAULT_KEYWORD_SETTINGS,
  matchKeyword,
  normalizeKeywordSettings,
  normalizeKeywordText,
  type KeywordSettings,
  type MatchCandidate,
} from '../../src/webhook/keywords.js'

const text = (value: string): MatchCandidate[] => [{ field: 'text.body', value, free: true }]
const lenient: KeywordSettings = { ...DEFAULT_KEYWORD_SETTINGS, mode: 'lenient' }

t.test('normalisation: trim, collapse, upper-case, drop surrounding punctuation and emoji', async (t) => {
  const cases: [string, string][] = [
    ['STOP', 'STOP'],
    ['stop', 'STOP'],
    [' stop ', 'STOP'],
    ['STOP.', 'STOP'],
    ['Stop!!!', 'STOP'],
    ['"stop"', 'STOP'],
    ['*STOP*', 'STOP'],
    ['¡stop!', 'STOP'],
    ['stop 🛑', 'STOP'],
    ['🛑🛑 stop 🙏🏽', 'STOP'],
    ['stop ❤️', 'STOP'],
    ['stop 👍🏽', 'STOP'],
    ['stop 🏳️‍🌈', 'STOP'],
    ['stop 🇺🇸', 'STOP'],
    ['stop #️⃣', 'STOP'],
    ['\u200bstop\u200b', 'STOP'],
    ['\u00a0stop\u00a0', 'STOP'],
    ['ＳＴＯＰ', 'STOP'],
    ['stop\n', 'STOP'],
    ['  stop   all  ', 'STOP ALL'],
    ['stop\t\nall', 'STOP ALL'],
    ['Stop promotions', 'STOP PROMOTIONS'],
    ["don't stop", "DON'T STOP"],
    ['opt-out', 'OPT-OUT'],
    ['stop. please', 'STOP. PLEASE'],
    ['🛑', ''],
    ['...', ''],
    ['', ''],
  ]
  for (const [input, expected] of cases) t.equal(normalizeKeywordText(input), expected, JSON.stringify(input))
})

t.test('exact mode matches the whole message only', async (t) => {
  const m = (s: string) => matchKeyword(DEFAULT_KEYWORD_SETTINGS, text(s))
  t.match(m('STOP.'), { rule: { keyword: 'STOP', action: 'opt_out', scope: 'all' }, how: 'exact', field: 'text.body' })
  t.match(m(' stop '), { rule: { keyword: 'STOP' } })
  t.equal(m("don't stop"), null, '"don\'t stop" does not match STOP')
  t.equal(m('please stop'), null)
  t.equal(m('stop it'), null)
  t.equal(m('Does it come in another color?'), null)
  for (const k of ['STOPALL', 'STOP ALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT', 'REVOKE', 'OPTOUT', 'OPT OUT']) {
    t.match(m(k.toLowerCase()), { rule: { keyword: k, action: 'opt_out', scope: 'all' } }, k)
  }
  t.match(m('stop promotions'), { rule: { keyword: 'STOP PROMOTIONS', action: 'opt_out', scope: 'marketing' } }, 'STOP PROMOTIONS is marketing only')
  t.match(m('Start'), { rule: { keyword: 'START', action: 'opt_in' } })
  t.match(m('unstop!'), { rule: { keyword: 'UNSTOP', action: 'opt_in' } })
  t.equal(m('🛑'), null, 'nothing left matches nothing')
})

t.test('lenient mode: short typed messages containing an opt-out keyword', async (t) => {
  const m = (s: string) => matchKeyword(lenient, text(s))
  t.match(m('please stop'), { rule: { keyword: 'STOP' }, how: 'lenient' })
  t.match(m("don't stop"), { rule: { keyword: 'STOP' }, how: 'lenient' }, 'lenient is lenient')
  t.match(m('Stop, please!'), { rule: { keyword: 'STOP' } }, 'punctuation around words is dropped')
  t.match(m('stop it now please'), { rule: { keyword: 'STOP' } }, '4 words')
  t.equal(m('please stop it now thanks'), null, '5 words: not an opt-out')
  t.match(m('stop promotions please'), { rule: { keyword: 'STOP PROMOTIONS', scope: 'marketing' } }, 'the longest keyword wins')
  t.match(m('stop all please'), { rule: { keyword: 'STOP ALL' } })
  t.equal(m('stopping'), null, 'whole words only')
  t.equal(m('please start'), null, 'never for opt-in rules')
  t.match(m('START'), { rule: { keyword: 'START' }, how: 'exact' }, 'exact still applies')
  // Not for buttons: the business wrote their labels.
  t.equal(matchKeyword(lenient, [{ field: 'button.text', value: "Don't stop", free: false }]), null)
})

t.test('candidates in order: payload then text, id then title', async (t) => {
  const button = (payload: string, label: string): MatchCandidate[] => [
    { field: 'button.payload', value: payload, free: false },
    { field: 'button.text', value: label, free: false },
  ]
  t.match(matchKeyword(DEFAULT_KEYWORD_SETTINGS, button('Stop promotions', 'Stop promotions')), { field: 'button.payload', rule: { keyword: 'STOP PROMOTIONS' } })
  t.match(matchKeyword(DEFAULT_KEYWORD_SETTINGS, button('PROMO_OPTOUT_42', 'Unsubscribe')), { field: 'button.text', rule: { keyword: 'UNSUBSCRIBE' } })
  t.match(matchKeyword(DEFAULT_KEYWORD_SETTINGS, button('STOP', 'Start')), { field: 'button.payload', rule: { keyword: 'STOP' } }, 'the payload decides first')
  t.equal(matchKeyword(DEFAULT_KEYWORD_SETTINGS, button('x', 'y')), null)
  const reply: MatchCandidate[] = [
    { field: 'interactive.button_reply.id', value: 'cancel-button', free: false },
    { field: 'interactive.button_reply.title', value: 'Cancel', free: false },
  ]
  t.match(matchKeyword(DEFAULT_KEYWORD_SETTINGS, reply), { field: 'interactive.button_reply.title', rule: { keyword: 'CANCEL' } })
})

t.test('the master toggle and custom rules', async (t) => {
  t.equal(matchKeyword({ ...DEFAULT_KEYWORD_SETTINGS, enabled: false }, text('STOP')), null)
  const custom: KeywordSettings = { enabled: true, mode: 'exact', rules: [{ keyword: 'BASTA', action: 'opt_out', scope: 'marketing' }] }
  t.match(matchKeyword(custom, text('basta!')), { rule: { keyword: 'BASTA' } })
  t.equal(matchKeyword(custom, text('STOP')), null, 'only the configured rules')
})

t.test('settings normalisation: stored upper-case, empty and duplicate keywords refused', async (t) => {
  const g = '0b8f6a9e-7c1d-4e2f-9a3b-5c6d7e8f9a0b'
  const { settings, problems } = normalizeKeywordSettings({
    enabled: true,
    mode: 'lenient',
    rules: [
      { keyword: '  stop   now! ', action: 'opt_out', scope: 'all' },
      { keyword: 'Alto', action: 'opt_out', scope: [g.toUpperCase(), g] },
    ],
  })
  t.same(problems, [])
  t.same(settings, {
    enabled: true,
    mode: 'lenient',
    rules: [
      { keyword: 'STOP NOW', action: 'opt_out', scope: 'all' },
      { keyword: 'ALTO', action: 'opt_out', scope: [g] },
    ],
  })
  const bad = normalizeKeywordSettings({
    enabled: true,
    mode: 'exact',
    rules: [
      { keyword: 'stop', action: 'opt_out', scope: 'all' },
      { keyword: 'STOP.', action: 'opt_in', scope: 'all' },
      { keyword: '🛑!', action: 'opt_out', scope: 'all' },
      { keyword: 'x'.repeat(65), action: 'opt_out', scope: 'all' },
    ],
  })
  t.same(
    bad.problems.map((p) => [p.pointer, p.code]),
    [
      ['/body/rules/1/keyword', 'duplicate_keyword'],
      ['/body/rules/2/keyword', 'invalid_keyword'],
      ['/body/rules/3/keyword', 'invalid_keyword'],
    ],
  )
})

t.test("default rules for WhatsApp's largest markets, accent-, case-, width- and hamza-insensitive", async (t) => {
  const d = DEFAULT_KEYWORD_SETTINGS
  const action = (s: string) => {
    const m = matchKeyword(d, text(s))
    return m ? `${m.rule.action}/${typeof m.rule.scope === 'string' ? m.rule.scope : 'list'}` : null
  }
  const optOutAll = [
    'parar', 'Parar.', 'ＰＡＲＡＲ', 'baja', 'BAJA!', 'dar de baja', 'Descadastrar', 'arret', 'Arrêt', 'ARRÊT 🛑', 'désabonner', 'stopp', 'Stopp!',
    'abmelden', 'berhenti', 'Berhenti.', 'стоп', 'СТОП', 'отписаться', 'إيقاف', 'ايقاف', 'إلغاء الاشتراك', 'الغاء الاشتراك',
  ]
  for (const s of optOutAll) t.equal(action(s), 'opt_out/all', s)
  for (const s of ['sair', 'Sair!', 'basta', 'BASTA!!']) t.equal(action(s), 'opt_out/marketing', `${s}: a word also used to leave a chat menu: marketing only`)
  for (const s of ['alta', 'Iniciar', 'démarrer', 'DEMARRER']) t.equal(action(s), 'opt_in/all', s)
  // Words that mean "cancel" (an order, an appointment) are not opt-outs by default.
  for (const s of ['cancelar', 'batal', 'annulla', 'iptal', 'não parar', 'parar de enviar pedidos']) t.equal(action(s), null, s)

  // Stored keywords keep their accents; matching ignores them, both ways.
  t.equal(normalizeKeywordText(' arrêt! '), 'ARRÊT')
  const custom: KeywordSettings = { enabled: true, mode: 'exact', rules: [{ keyword: 'ARRÊT', action: 'opt_out', scope: 'all' }, { keyword: 'VOLVER', action: 'opt_in', scope: 'all' }] }
  t.ok(matchKeyword(custom, text('arret')), 'ARRÊT matches arret')
  t.ok(matchKeyword(custom, text('Arrêt')), 'and arrêt')
  t.ok(matchKeyword(custom, text('VOLVÉR')), 'VOLVER matches VOLVÉR')
  const dup = normalizeKeywordSettings({ enabled: true, mode: 'exact', rules: [{ keyword: 'arret', action: 'opt_out', scope: 'all' }, { keyword: 'ARRÊT', action: 'opt_out', scope: 'all' }] })
  t.same(dup.problems.map((p) => [p.pointer, p.code]), [['/body/rules/1/keyword', 'duplicate_keyword']], 'the same keyword once accents are set aside')
  // Every default rule is unique under matching, so none shadows another.
  t.same(normalizeKeywordSettings(d).problems, [])
})
