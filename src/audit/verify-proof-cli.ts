/**
 * `consent-ledger verify-proof <file> [--public-key <pem file>] [--current <file>]`
 * (also runnable alone: `node dist/src/audit/verify-proof-cli.js <file>`; it loads nothing but
 * node:fs, node:crypto and the pure modules of verify-proof.ts).
 *
 * Prints a JSON report on stdout. Exit code 0: the proof verifies (and, with --current, still
 * matches the ledger as shown by that fresh proof); 1: it does not; 64: usage; 66: a file cannot
 * be read or is not JSON.
 */
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { compareWithCurrent, verifyProof } from './verify-proof.js'

const USAGE = 'usage: consent-ledger verify-proof <proof.json> [--public-key <key.pem>] [--current <fresh-proof.json>]'

function readJson(file: string): unknown {
  return JSON.parse(readFileSync(file, 'utf8'))
}

export function runVerifyProof(args: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): number {
  let parsed
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: { 'public-key': { type: 'string' }, current: { type: 'string' } } })
  } catch (e) {
    err.write(`${(e as Error).message}\n${USAGE}\n`)
    return 64
  }
  const [file, ...extra] = parsed.positionals
  if (!file || extra.length > 0) {
    err.write(`${USAGE}\n`)
    return 64
  }
  let proof: unknown
  let current: unknown
  let publicKeyPem: string | undefined
  try {
    proof = readJson(file)
    if (parsed.values.current) current = readJson(parsed.values.current)
    if (parsed.values['public-key']) publicKeyPem = readFileSync(parsed.values['public-key'], 'utf8')
  } catch (e) {
    err.write(`cannot read: ${(e as Error).message}\n`)
    return 66
  }
  const report = verifyProof(proof, { publicKeyPem })
  const { chains, ...summary } = report
  const result: Record<string, unknown> = {
    ...summary,
    chains: chains.map(({ hashes: _h, ...c }) => c),
  }
  let ok = report.ok
  if (current !== undefined) {
    const cmp = compareWithCurrent(proof, current, { publicKeyPem })
    result.matches_current = cmp
    ok = ok && cmp.ok
  }
  result.ok = ok
  out.write(`${JSON.stringify(result, null, 2)}\n`)
  return ok ? 0 : 1
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = runVerifyProof(process.argv.slice(2))
}
