/**
 * The data the routes read and write, bound to the shared database once and decorated like the
 * services (src/app.ts says why there is one way). A method whose first parameter is `tx` runs in
 * the caller's transaction (the one replyIdempotent opens, so the work commits with its stored
 * answer); the others use the pool.
 */
import fp from 'fastify-plugin'
import type { Sql } from '../db/sql.js'
import { createWorkspaceRepository, type WorkspaceRepository } from '../workspaces/workspace-repository.js'
import { readConsentSettings, writeConsentSettings } from '../settings/consent-settings-repository.js'
import { readWorkspaceWhatsApp, writeWorkspaceWhatsApp } from '../settings/whatsapp-settings-repository.js'
import { readKeywordSettings, writeKeywordSettings } from '../webhook/keyword-settings-repository.js'
import { applyAttributePatches, getContactDetail, listContacts, patchContact, requireLiveContact } from '../contacts/contact-service.js'
import { listUserSubscriptionStatus } from '../braze/user-status.js'
import { existingIdentities } from '../braze/known-identities.js'
import { errorRange, getImport, lastErrorRow, listImports } from '../import/import-repository.js'
import { rebuildProjection } from '../ledger/projection.js'
import { databaseReadiness } from '../health/database-readiness.js'
import { mapNumberAsOperator } from '../whatsapp-numbers/operator-mapping.js'
import { createNumbersRepository } from '../webhook/numbers-repository.js'

type Tail<F> = F extends (sql: Sql, ...rest: infer R) => infer T ? (...rest: R) => T : never

/** Binds a function whose first parameter is the database handle to the pool. */
const onPool =
  <F extends (sql: Sql, ...rest: never[]) => unknown>(sql: Sql, f: F): Tail<F> =>
  ((...rest: never[]) => f(sql, ...rest)) as Tail<F>

export function createRepositories(sql: Sql) {
  const numbers = createNumbersRepository(sql)
  return {
    workspaces: createWorkspaceRepository(sql),
    settings: {
      consent: { read: onPool(sql, readConsentSettings), write: writeConsentSettings },
      keywords: { read: onPool(sql, readKeywordSettings), write: writeKeywordSettings },
      whatsapp: { read: onPool(sql, readWorkspaceWhatsApp), write: writeWorkspaceWhatsApp },
    },
    contacts: {
      list: onPool(sql, listContacts),
      detail: onPool(sql, getContactDetail),
      patch: patchContact,
      requireLive: requireLiveContact,
      applyAttributePatches,
    },
    braze: {
      userStatus: onPool(sql, listUserSubscriptionStatus),
      existingIdentities: onPool(sql, existingIdentities),
    },
    importRecords: {
      list: onPool(sql, listImports),
      get: onPool(sql, getImport),
      lastErrorRow: onPool(sql, lastErrorRow),
      errorRange: onPool(sql, errorRange),
    },
    projection: { rebuild: onPool(sql, rebuildProjection) },
    operatorNumbers: {
      map: (workspaceId: string, phoneNumberId: string, display: string | undefined) => mapNumberAsOperator(sql, numbers, workspaceId, phoneNumberId, display),
    },
    readiness: { database: () => databaseReadiness(sql) },
  }
}

type Repositories = ReturnType<typeof createRepositories>

declare module 'fastify' {
  interface FastifyInstance {
    workspaces: WorkspaceRepository
    settings: Repositories['settings']
    contacts: Repositories['contacts']
    braze: Repositories['braze']
    importRecords: Repositories['importRecords']
    projection: Repositories['projection']
    operatorNumbers: Repositories['operatorNumbers']
    readiness: Repositories['readiness']
  }
}

export default fp(
  async (app) => {
    const r = createRepositories(app.database.sql)
    app.decorate('workspaces', r.workspaces)
    app.decorate('settings', r.settings)
    app.decorate('contacts', r.contacts)
    app.decorate('braze', r.braze)
    app.decorate('importRecords', r.importRecords)
    app.decorate('projection', r.projection)
    app.decorate('operatorNumbers', r.operatorNumbers)
    app.decorate('readiness', r.readiness)
  },
  { name: 'repositories', dependencies: ['db'] },
)
