/**
 * The house rules a newcomer can rely on (docs/architecture.md, "House rules"): small functions and
 * files in src/, no block of code written twice, and comments that point only to documents this
 * repository holds. They are checked here so that they stay true without anyone remembering them.
 */
import { test } from 'tap'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import ts from 'typescript'

const ROOT = join(import.meta.dirname, '..', '..')
const MAX_FUNCTION_LINES = 120
const MAX_FILE_LINES = 400
/** A block of this many meaningful lines that stands twice in src/ is a copy. */
const MAX_COPIED_LINES = 10

function filesUnder(dir: string, ending: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return filesUnder(path, ending)
    return path.endsWith(ending) ? [path] : []
  })
}

const sources = filesUnder(join(ROOT, 'src'), '.ts').map((path) => ({
  path: relative(ROOT, path),
  text: readFileSync(path, 'utf8'),
}))

interface Span {
  where: string
  lines: number
}

/** Every function-like node with a body (declarations, methods, arrows, function expressions). */
export function functionSpans(path: string, text: string): Span[] {
  const file = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true)
  const spans: Span[] = []
  const lineOf = (pos: number) => file.getLineAndCharacterOfPosition(pos).line + 1
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const first = lineOf(node.getStart(file))
      spans.push({ where: `${path}:${first} ${nameOf(node)}`, lines: lineOf(node.end) - first + 1 })
    }
    ts.forEachChild(node, visit)
  }
  visit(file)
  return spans
}

function nameOf(node: ts.Node): string {
  const named = node as ts.Node & { name?: ts.Node }
  if (named.name) return named.name.getText()
  const parent = node.parent
  if (parent && (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent))) return parent.name.getText()
  return '(anonymous)'
}

/** The lines that carry code: no blank lines, comments, imports or lone punctuation; spaces folded. */
export function meaningfulLines(text: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = []
  let inBlockComment = false
  text.split('\n').forEach((raw, i) => {
    let s = raw.trim()
    if (inBlockComment) {
      if (!s.includes('*/')) return
      s = s.slice(s.indexOf('*/') + 2).trim()
      inBlockComment = false
    }
    if (s.startsWith('/*')) {
      if (!s.includes('*/')) inBlockComment = true
      return
    }
    if (s === '' || s.startsWith('//') || s.startsWith('import ') || !/[A-Za-z0-9]/.test(s)) return
    out.push({ line: i + 1, text: s.replace(/\s+/g, ' ') })
  })
  return out
}

/** Pairs of places that share a run of more than MAX_COPIED_LINES identical meaningful lines. */
export function copiedBlocks(files: { path: string; text: string }[], window = MAX_COPIED_LINES + 1): string[] {
  const seen = new Map<string, string>()
  const copies = new Set<string>()
  for (const { path, text } of files) {
    const lines = meaningfulLines(text)
    for (let i = 0; i + window <= lines.length; i++) {
      const key = lines
        .slice(i, i + window)
        .map((l) => l.text)
        .join('\n')
      const here = `${path}:${lines[i]!.line}`
      const first = seen.get(key)
      if (first === undefined) seen.set(key, here)
      else copies.add(`${here} repeats ${first}`)
    }
  }
  return [...copies]
}

/** Documents that live outside this repository, which a comment must not send a reader to. */
const OUTSIDE_DOCUMENT = /DESIGN\.md|DESIGN §|STYLE\.md|§|\.\.\/shared|shared\/(DESIGN|STYLE|fixtures)/

/** A comment that narrates a benchmark instead of giving a reason (history lives in docs/performance.md). */
const MEASUREMENT = /\bmeasured\b|\breq\/s\b|\bA\/B run/i

function comments(path: string, text: string): { line: number; text: string }[] {
  if (path.endsWith('.sql')) {
    return text.split('\n').flatMap((t, i) => (t.includes('--') ? [{ line: i + 1, text: t.slice(t.indexOf('--')) }] : []))
  }
  const file = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true)
  const out: { line: number; text: string }[] = []
  const scanner = ts.createScanner(ts.ScriptTarget.Latest, false, ts.LanguageVariant.Standard, text)
  for (let kind = scanner.scan(); kind !== ts.SyntaxKind.EndOfFileToken; kind = scanner.scan()) {
    if (kind === ts.SyntaxKind.SingleLineCommentTrivia || kind === ts.SyntaxKind.MultiLineCommentTrivia) {
      out.push({ line: file.getLineAndCharacterOfPosition(scanner.getTokenStart()).line + 1, text: scanner.getTokenText() })
    }
  }
  return out
}

test('no function in src/ is longer than 120 lines', async (t) => {
  const long = sources
    .flatMap(({ path, text }) => functionSpans(path, text))
    .filter((s) => s.lines > MAX_FUNCTION_LINES)
    .map((s) => `${s.where} (${s.lines} lines)`)
  t.same(long, [], 'functions over the limit')
})

test('no file in src/ is longer than 400 lines', async (t) => {
  const long = sources
    .map(({ path, text }) => ({ path, lines: text.split('\n').length - (text.endsWith('\n') ? 1 : 0) }))
    .filter((f) => f.lines > MAX_FILE_LINES)
    .map((f) => `${f.path} (${f.lines} lines)`)
  t.same(long, [], 'files over the limit')
})

test('no block of more than 10 code lines is written twice in src/', async (t) => {
  t.same(copiedBlocks(sources), [], 'copied blocks')
})

test('comments in src/ and migrations/ cite only documents in this repository', async (t) => {
  const migrations = filesUnder(join(ROOT, 'migrations'), '.sql').map((path) => ({
    path: relative(ROOT, path),
    text: readFileSync(path, 'utf8'),
  }))
  const citing = [...sources, ...migrations].flatMap(({ path, text }) =>
    comments(path, text)
      .filter((c) => OUTSIDE_DOCUMENT.test(c.text))
      .map((c) => `${path}:${c.line} ${c.text.split('\n').find((l) => OUTSIDE_DOCUMENT.test(l))!.trim()}`),
  )
  t.same(citing, [], 'comments citing outside documents')
})

test('comments in src/ give reasons, not measurement history', async (t) => {
  const narrating = sources.flatMap(({ path, text }) =>
    comments(path, text)
      .filter((c) => MEASUREMENT.test(c.text))
      .map((c) => `${path}:${c.line} ${c.text.split('\n').find((l) => MEASUREMENT.test(l))!.trim()}`),
  )
  t.same(narrating, [], 'comments narrating measurements')
})

test('the checks themselves catch what they are for', async (t) => {
  const body = Array.from({ length: 125 }, (_, i) => `  const v${i} = ${i}`).join('\n')
  const spans = functionSpans('x.ts', `export function big() {\n${body}\n}\n`)
  t.equal(spans[0]!.lines, 127, 'a 127-line function is measured as such')

  const block = Array.from({ length: 11 }, (_, i) => `total += item${i}.price * ${i}`).join('\n')
  t.equal(copiedBlocks([{ path: 'a.ts', text: block }, { path: 'b.ts', text: `// other\n${block}` }]).length, 1, 'an 11-line copy is found')
  t.same(
    copiedBlocks([{ path: 'a.ts', text: block }, { path: 'b.ts', text: block.split('\n').slice(1).join('\n') }]),
    [],
    'a 10-line copy is allowed',
  )
  t.same(
    meaningfulLines('/* a\n b */\n// c\nimport x from "y"\n  })\nconst  a =  1').map((l) => l.text),
    ['const a = 1'],
    'comments, imports and lone punctuation do not count',
  )
  t.ok(OUTSIDE_DOCUMENT.test('// see DESIGN §3.1'), 'a design-document citation is caught')
  t.notOk(OUTSIDE_DOCUMENT.test('// see docs/audit.md'), 'a pointer to docs/ is fine')
  t.ok(MEASUREMENT.test('// measured 130-145 req/s'), 'a measurement narrative is caught')
})
