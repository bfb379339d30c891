/**
 * The one place that reads the environment. Everything else receives a validated `Config`.
 * Tests pass config as data (`loadConfig({...})`) instead of mutating process.env.
 * The settings are listed for operators in the README ("Configuration") and docs/operations.md.
 */
import Type, { type Static, type TSchema } from 'typebox'
import Value from 'typebox/value'
import { parseSigningKey, SigningKeyError } from '../audit/signing.js'

const Port = Type.Integer({ minimum: 0, maximum: 65535 })
const Positive = Type.Integer({ minimum: 1 })

export const EnvSchema = Type.Object({
  /** PostgreSQL URL. Unset: embedded PGlite persisted in DATA_DIR. */
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  /** Optional read replica for lagging reads (audit, exports). */
  DATABASE_READ_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DATABASE_POOL_MAX: Type.Integer({ minimum: 1, maximum: 1000, default: 20 }),
  /** How long a request waits for a new database connection before it answers 503 (an outage answers in bounded time). */
  DATABASE_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 5_000 }),
  /** Where PGlite keeps its files; `memory://` keeps nothing (tests, smoke runs). */
  DATA_DIR: Type.String({ minLength: 1, default: './data' }),
  PORT: Type.Integer({ ...Port, default: 3000 }),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  // An enum, not a union of literals mapped from a plain string[]: that one's static type was `never`.
  LOG_LEVEL: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, { default: 'info' }),
  /** Bootstrap root key: admin of workspace `default`, and the only key that manages workspaces. */
  CONSENT_ADMIN_KEY: Type.Optional(Type.String({ minLength: 24 })),
  WHATSAPP_APP_SECRETS: Type.Optional(Type.String({ minLength: 1 })),
  WHATSAPP_VERIFY_TOKEN: Type.Optional(Type.String({ minLength: 1 })),
  /** Ed25519 private key that signs checkpoints: PEM, or base64 of PKCS#8 DER or of the 32-byte seed. Unset: checkpoints disabled. */
  CHECKPOINT_SIGNING_KEY: Type.Optional(Type.String({ minLength: 1 })),
  /** A workspace with new events gets a checkpoint once its last one is this old (ms); 0 turns the background job off. */
  CHECKPOINT_INTERVAL_MS: Type.Integer({ minimum: 0, default: 600_000 }),
  /** ... or as soon as this many events arrived since its last checkpoint; 0: by interval only. */
  CHECKPOINT_EVERY_EVENTS: Type.Integer({ minimum: 0, default: 10_000 }),
  /** How often the checkpoint job looks for due workspaces (ms). */
  CHECKPOINT_POLL_MS: Type.Integer({ minimum: 10, default: 5_000 }),
  /** Rows per import batch (one transaction, one ledger append): larger is faster, smaller holds less memory. */
  IMPORT_BATCH_SIZE: Type.Integer({ minimum: 1, maximum: 50_000, default: 1_000 }),
  /** Webhook payloads processed inside their own request at once; beyond, acknowledged on commit and processed in batches right after (0: always batch). */
  WEBHOOK_INLINE_MAX: Type.Integer({ minimum: 0, maximum: 1000, default: 4 }),
  /**
   * Group commit of request appends (/users/track): transactions per workspace at once; requests
   * arriving while they run go together in the next one. 0: every request in its own transaction.
   */
  GROUP_COMMIT_CONCURRENCY: Type.Integer({ minimum: 0, maximum: 1000, default: 2 }),
  /** Ledger items per grouped transaction at most; a request with more runs alone at once. */
  GROUP_COMMIT_MAX_ITEMS: Type.Integer({ minimum: 1, maximum: 50_000, default: 100 }),
  /**
   * Transactions per workspace at once for requests larger than GROUP_COMMIT_MAX_ITEMS (a 75-object
   * /users/track); waiting ones go together up to 160 identities (two 75-object requests). 0: each
   * runs alone at once.
   */
  GROUP_COMMIT_LARGE_CONCURRENCY: Type.Integer({ minimum: 0, maximum: 1000, default: 3 }),
  /**
   * Single pre-send checks of one workspace and target (group, or channel + category + number):
   * statements at once; checks arriving while they run share the next statement. 0: every check in
   * its own statement. Two, not one: with one, a statement held up (its backend preempted on a busy
   * machine) holds up every check waiting behind it, which raises the tail latency several-fold and
   * lowers throughput (docs/performance.md).
   */
  CHECK_GROUP_CONCURRENCY: Type.Integer({ minimum: 0, maximum: 1000, default: 2 }),
  /** Single checks per shared statement at most. */
  CHECK_GROUP_MAX_ITEMS: Type.Integer({ minimum: 1, maximum: 10_000, default: 100 }),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  /** Requests per key (per IP when unauthenticated) per window. */
  RATE_LIMIT_MAX: Type.Integer({ minimum: 1, default: 6000 }),
  RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, default: 60_000 }),
  /**
   * When answers carry x-ratelimit-limit|remaining|reset: `on_limit` on 429 only (with
   * retry-after), `always` on every limited answer too (three more headers to set, send and parse on
   * every call, a visible share of the server CPU a pre-send check costs).
   */
  RATE_LIMIT_HEADERS: Type.Enum(['on_limit', 'always'] as const, { default: 'on_limit' }),
  /** Failed authentications per client address per window before it gets 429 (docs/operations.md). */
  AUTH_FAILURE_MAX: Type.Integer({ minimum: 1, default: 30 }),
  AUTH_FAILURE_WINDOW_MS: Type.Integer({ minimum: 1000, default: 60_000 }),
  /** Largest CSV upload in bytes (1 GiB). */
  IMPORT_MAX_BYTES: Type.Integer({ minimum: 1024, maximum: 1024 * 1024 * 1024 * 64, default: 1024 * 1024 * 1024 }),
  /** JSON body limit in bytes (1 MiB). */
  BODY_LIMIT: Type.Integer({ minimum: 1024, default: 1_048_576 }),
  /** Braze's per-request object limit on /users/track. */
  BRAZE_MAX_OBJECTS: Type.Integer({ ...Positive, default: 75 }),
  /** How long an Idempotency-Key replays its first answer. */
  IDEMPOTENCY_TTL_HOURS: Type.Integer({ ...Positive, default: 24 }),
  /** How long in-flight requests may take to finish on SIGTERM before the process exits. */
  SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 0, default: 10_000 }),
  /** Trust X-Forwarded-* from a proxy in front (true/false). */
  TRUST_PROXY: Type.Boolean({ default: false }),
})

export type Config = Static<typeof EnvSchema>

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join('\n  ')}`)
    this.name = 'ConfigError'
  }
}

/**
 * Validate configuration. Empty strings count as unset, so `FOO=` in a .env file falls back to the
 * default. Throws ConfigError naming each bad variable.
 */
export function loadConfig(source: Record<string, unknown> = process.env): Config {
  const known = Object.keys(EnvSchema.properties)
  const picked: Record<string, unknown> = {}
  for (const name of known) {
    const v = source[name]
    if (v === undefined || v === '') continue
    picked[name] = v
  }
  const withDefaults = Value.Default(EnvSchema, picked)
  const converted = Value.Convert(EnvSchema, withDefaults) as Record<string, unknown>
  const keyProblem = signingKeyProblem(picked.CHECKPOINT_SIGNING_KEY)
  if (!Value.Check(EnvSchema, converted)) {
    // Checked one variable at a time: TypeBox caps Value.Errors at 8 errors per call, so one
    // variable with several errors could hide every other bad variable.
    const problems: string[] = []
    for (const [name, schema] of Object.entries(EnvSchema.properties) as [string, TSchema][]) {
      const value = converted[name]
      if (value === undefined || Value.Check(schema, value)) continue
      const [first] = Value.Errors(schema, value)
      const allowed = first?.params && (first.params as { allowedValues?: unknown[] }).allowedValues
      const message = allowed ? `must be one of ${allowed.join(', ')}` : first?.message ?? 'is invalid'
      const given = picked[name]
      const secret = /KEY|SECRET|TOKEN|URL/.test(name)
      problems.push(`${name}: ${message}${given !== undefined && !secret ? ` (got ${JSON.stringify(given)})` : ''}`)
    }
    if (keyProblem) problems.push(keyProblem)
    throw new ConfigError(problems.length ? problems : ['the configuration does not match its schema'])
  }
  if (keyProblem) throw new ConfigError([keyProblem])
  return converted as Config
}

/** CHECKPOINT_SIGNING_KEY must parse as an Ed25519 private key (the value is never echoed). */
function signingKeyProblem(value: unknown): string | null {
  if (typeof value !== 'string' || value === '') return null
  try {
    parseSigningKey(value)
    return null
  } catch (err) {
    const why = err instanceof SigningKeyError ? err.message : 'cannot be read'
    return `CHECKPOINT_SIGNING_KEY: must be an Ed25519 private key (PEM, or base64 of a PKCS#8 DER or of a 32-byte seed); it ${why}`
  }
}
