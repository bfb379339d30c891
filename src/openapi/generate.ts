/**
 * The committed contract `openapi/openapi.json` is generated from the live route schemas
 * (`npm run openapi`); test/openapi.test.ts fails when the file and the code disagree.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { migrationsFolder } from '../db/migrate.js'

export const openapiFile = join(migrationsFolder, '..', 'openapi', 'openapi.json')

export async function renderOpenApi(app: FastifyInstance): Promise<string> {
  await app.ready()
  return `${JSON.stringify(app.swagger(), null, 2)}\n`
}

export function readCommittedOpenApi(): string {
  return readFileSync(openapiFile, 'utf8')
}

export function writeOpenApi(text: string): void {
  writeFileSync(openapiFile, text)
}
