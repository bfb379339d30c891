#!/usr/bin/env node
/**
 * consent-ledger CLI:
 *   serve                      start the HTTP service (migrates the embedded database first)
 *   migrate                    apply migrations to DATABASE_URL (or the embedded database)
 *   openapi [--write]          print (or write to openapi/openapi.json) the OpenAPI document
 *   keys create --name N --scopes a,b [--workspace ID]
 *                              create an API key and print it once (JSON)
 *   verify-proof <file> [--public-key <pem file>] [--current <file>]
 *                              check a saved /audit/proof offline (exit 0 valid, 1 not)
 *   import <file.csv> [--url URL] [--key KEY] [--subscription-group-id ID] [--subscription-state S]
 *          [--source-label L] [--idempotency-key K] [--errors FILE] [--no-wait]
 *                              stream a CSV to a running service (POST /imports), show progress, print the report
 */
import { parseArgs } from 'node:util'
import type { Config } from './config/env.js'
// Everything else is imported by the command that needs it: `verify-proof` (an auditor's offline
// check) and `import` (a client) start without loading the configuration schema, the database
// drivers or the migrations.

const USAGE = `usage: consent-ledger <serve | migrate | keys create --name NAME --scopes SCOPE[,SCOPE] [--workspace ID] | verify-proof FILE [--public-key PEM_FILE] [--current FILE] | import FILE.csv [--url URL] [--key KEY]>`

async function migrate(config: Config) {
  const { migrateEmbedded, migratePostgres } = await import('./db/migrate.js')
  const { openDatabase } = await import('./db/client.js')
  if (config.DATABASE_URL) {
    await migratePostgres(config.DATABASE_URL)
  } else {
    const db = await openDatabase({ dataDir: config.DATA_DIR })
    await migrateEmbedded(db.pglite!)
    await db.close()
  }
}

export async function main(argv: string[]): Promise<number> {
  const [command, sub, ...rest] = argv
  // Offline: no configuration, no database (src/audit/verify-proof.ts needs only Node's crypto).
  if (command === 'verify-proof') {
    const { runVerifyProof } = await import('./audit/verify-proof-cli.js')
    return runVerifyProof(argv.slice(1))
  }
  // A client of a running service: no configuration, no database.
  if (command === 'import') {
    const { runImportCommand } = await import('./import/cli-import.js')
    return runImportCommand(argv.slice(1))
  }
  const { loadConfig, ConfigError } = await import('./config/env.js')
  let config: Config
  try {
    config = loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`)
      return 78 // EX_CONFIG
    }
    throw err
  }
  switch (command) {
    case 'serve': {
      const { startServer } = await import('./server.js')
      await startServer(config)
      return -1 // keep running
    }
    case 'openapi': {
      // Built on a throw-away in-memory database: the document depends only on the code.
      const { buildApp } = await import('./app.js')
      const { renderOpenApi, writeOpenApi, openapiFile } = await import('./openapi/generate.js')
      const app = await buildApp({ ...config, DATABASE_URL: undefined, DATA_DIR: 'memory://', REDIS_URL: undefined })
      const text = await renderOpenApi(app)
      await app.close()
      if (sub === '--write') {
        writeOpenApi(text)
        process.stdout.write(`wrote ${openapiFile}\n`)
      } else process.stdout.write(text)
      return 0
    }
    case 'migrate':
      await migrate(config)
      process.stdout.write('migrations applied\n')
      return 0
    case 'keys': {
      if (sub !== 'create') break
      const { createApiKeyService, DEFAULT_WORKSPACE_ID, SCOPES } = await import('./auth/api-keys.js')
      const { openDatabase } = await import('./db/client.js')
      const { values } = parseArgs({
        args: rest,
        options: { name: { type: 'string' }, scopes: { type: 'string' }, workspace: { type: 'string' } },
      })
      const scopes = (values.scopes ?? '').split(',').map((s) => s.trim()).filter(Boolean)
      const bad = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s))
      if (!values.name || scopes.length === 0 || bad.length > 0) {
        process.stderr.write(`${bad.length ? `unknown scope(s): ${bad.join(', ')}; ` : ''}scopes are ${SCOPES.join(', ')}\n${USAGE}\n`)
        return 64
      }
      await migrate(config)
      const db = await openDatabase({ databaseUrl: config.DATABASE_URL, dataDir: config.DATA_DIR })
      try {
        const service = createApiKeyService(db.sql)
        await service.ensureRoot(config.CONSENT_ADMIN_KEY)
        const workspace = values.workspace ?? DEFAULT_WORKSPACE_ID
        const [w] = await db.sql.query(`SELECT 1 FROM workspaces WHERE id::text = $1`, [workspace])
        if (!w) {
          process.stderr.write(`workspace ${workspace} not found\n`)
          return 66
        }
        const k = await service.create(workspace, values.name, scopes)
        process.stdout.write(`${JSON.stringify({ id: k.id, workspace_id: k.workspace_id, name: k.name, scopes: k.scopes, key: k.key })}\n`)
        return 0
      } finally {
        await db.close()
      }
    }
  }
  process.stderr.write(`${USAGE}\n`)
  return 64
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code)
  },
  (err) => {
    process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    process.exit(1)
  },
)
