/**
 * The processes a fault scenario owns: a private PostgreSQL cluster (initdb/pg_ctl from
 * `pg_config --bindir`, run as the `postgres` OS user when this process is root), a private
 * redis-server and the service itself, each on a free loopback port, each stopped by its own PID.
 *
 * Every process is registered the moment it starts; `stopAll()` (the scenarios' teardown) and a
 * synchronous `exit` handler (a test process that times out or throws) kill exactly those PIDs, so
 * a failed run leaves nothing behind. Data directories live under one temporary directory per
 * scenario, removed at the end.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { TS_CHILD_ARGS } from '../helpers/child.js'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A loopback port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const srv = createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const { port } = srv.address() as { port: number }
  await new Promise((r) => srv.close(r))
  return port
}

// ---- cleanup of everything this process started ----

type Stopper = () => void
const stoppers = new Set<Stopper>()
const dirs = new Set<string>()
let exitHooked = false

function register(stop: Stopper): () => void {
  if (!exitHooked) {
    exitHooked = true
    // Synchronous on purpose: runs even when the test process exits on a timeout or a throw.
    process.on('exit', stopAllSync)
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      process.once(sig, () => {
        stopAllSync()
        process.exit(1)
      })
    }
  }
  stoppers.add(stop)
  return () => stoppers.delete(stop)
}

function stopAllSync() {
  for (const stop of [...stoppers].reverse()) {
    try {
      stop()
    } catch {}
  }
  stoppers.clear()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
  dirs.clear()
}

/** Kills every process this test process started and removes the scenario directories. */
export function stopAll(): void {
  stopAllSync()
}

const killPid = (pid: number | undefined, sig: NodeJS.Signals = 'SIGKILL') => {
  if (!pid) return
  try {
    process.kill(pid, sig)
  } catch {}
}

/**
 * Directories of earlier runs whose test process is gone (killed before its cleanup could run):
 * their PostgreSQL servers are stopped through pg_ctl on their own data directories (never by a
 * PID that may have been reused) and the directories removed. A run still alive is left alone.
 */
function sweepStale() {
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith('consent-faults-')) continue
    const d = join(tmpdir(), entry)
    let owner = 0
    try {
      owner = Number(readFileSync(join(d, 'owner.pid'), 'utf8'))
    } catch {}
    if (owner > 0) {
      try {
        process.kill(owner, 0)
        continue
      } catch {}
    }
    for (const sub of readdirSync(d)) {
      if (existsSync(join(d, sub, 'postmaster.pid'))) pgToolSync('pg_ctl', ['-D', join(d, sub), '-m', 'immediate', '-w', '-t', '10', 'stop'])
    }
    rmSync(d, { recursive: true, force: true })
  }
}

/** A temporary directory for one scenario, readable and writable by the postgres OS user. */
export function scenarioDir(name: string): string {
  sweepStale()
  const d = mkdtempSync(join(tmpdir(), `consent-faults-${name}-`))
  writeFileSync(join(d, 'owner.pid'), String(process.pid))
  dirs.add(d)
  if (isRoot()) chownSync(d, pgUid(), pgGid())
  return d
}

// ---- PostgreSQL ----

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0
let ids: { uid: number; gid: number } | undefined
function pgIds() {
  if (!ids) {
    const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim())
    const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim())
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error('no `postgres` OS user to run the private cluster as')
    ids = { uid, gid }
  }
  return ids
}
const pgUid = () => pgIds().uid
const pgGid = () => pgIds().gid

let bindir: string | undefined
function pgBin(tool: string): string {
  bindir ??= spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' }).stdout.trim()
  if (!bindir) throw new Error('pg_config --bindir answered nothing: PostgreSQL server binaries are needed')
  return join(bindir, tool)
}

/** Runs a PostgreSQL tool as the postgres OS user (directly when not root) and waits for it. */
async function pgTool(tool: string, args: string[], opts: { allowFail?: boolean } = {}): Promise<{ code: number; out: string }> {
  const [cmd, argv] = isRoot() ? ['runuser', ['-u', 'postgres', '--', pgBin(tool), ...args]] : [pgBin(tool), args]
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: tmpdir() })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (out += d))
  const [code] = (await once(child, 'exit')) as [number | null]
  if (code !== 0 && !opts.allowFail) throw new Error(`${tool} ${args.join(' ')} exited ${code}: ${out}`)
  return { code: code ?? -1, out }
}

function pgToolSync(tool: string, args: string[]) {
  const [cmd, argv] = isRoot() ? ['runuser', ['-u', 'postgres', '--', pgBin(tool), ...args]] : [pgBin(tool), args]
  spawnSync(cmd, argv, { stdio: 'ignore', cwd: tmpdir(), timeout: 15_000 })
}

export interface ClusterOptions {
  /** Extra postgresql.conf lines. */
  conf?: string[]
}

/** One private PostgreSQL cluster (data directory, port, server log) owned by this process. */
export class PgCluster {
  private unregister: (() => void) | undefined
  private constructor(
    readonly name: string,
    readonly dataDir: string,
    readonly port: number,
    readonly socketDir: string,
  ) {}

  /** `initdb` a new cluster (trust auth, loopback only); not started. */
  static async init(dir: string, name: string, opts: ClusterOptions = {}): Promise<PgCluster> {
    const c = new PgCluster(name, join(dir, name), await freePort(), dir)
    await pgTool('initdb', ['-D', c.dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-instructions'])
    c.appendConf([
      `port = ${c.port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = '${c.socketDir}'`,
      'max_connections = 60',
      'shared_buffers = 32MB',
      // Small, so a checkpoint or a restart after a crash takes little time on a loaded machine.
      'max_wal_size = 256MB',
      'wal_level = replica',
      'max_wal_senders = 5',
      'logging_collector = off',
      ...(opts.conf ?? []),
    ])
    return c
  }

  /** A standby cloned from `primary` with `pg_basebackup -R` (standby.signal, primary_conninfo). */
  static async standbyOf(primary: PgCluster, dir: string, name: string): Promise<PgCluster> {
    const c = new PgCluster(name, join(dir, name), await freePort(), dir)
    await pgTool('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', c.dataDir, '-R', '-X', 'stream', '-c', 'fast', '--no-sync'])
    // The clone carries the primary's port and application name; the standby gets its own.
    c.appendConf([`port = ${c.port}`, `primary_conninfo = 'host=127.0.0.1 port=${primary.port} user=postgres application_name=${name}'`])
    return c
  }

  appendConf(lines: string[]): void {
    const file = join(this.dataDir, 'postgresql.auto.conf')
    const before = existsSync(file) ? readFileSync(file, 'utf8') : ''
    writeFileSync(file, `${before}\n${lines.join('\n')}\n`)
    if (isRoot()) chownSync(file, pgUid(), pgGid())
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`
  }

  /** The postmaster's PID (first line of postmaster.pid), if it runs. */
  get pid(): number | undefined {
    try {
      const pid = Number(readFileSync(join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
      return Number.isInteger(pid) && pid > 0 ? pid : undefined
    } catch {
      return undefined
    }
  }

  async start(): Promise<void> {
    await pgTool('pg_ctl', ['-D', this.dataDir, '-l', join(this.socketDir, `${this.name}.log`), '-w', '-t', '60', 'start'])
    this.unregister ??= register(() => {
      // pg_ctl as the cleanup (it knows the children); the postmaster's PID as the fallback.
      const pid = this.pid
      pgToolSync('pg_ctl', ['-D', this.dataDir, '-m', 'immediate', '-w', '-t', '10', 'stop'])
      if (pid) killPid(pid, 'SIGQUIT')
    })
  }

  /** pg_ctl stop in the given mode; waits until the postmaster is gone. */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await pgTool('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', '-t', '60', 'stop'], { allowFail: true })
  }

  /** `pg_ctl restart -m immediate`: every backend killed without a checkpoint, crash recovery on start. */
  async restartImmediate(): Promise<void> {
    await pgTool('pg_ctl', ['-D', this.dataDir, '-l', join(this.socketDir, `${this.name}.log`), '-m', 'immediate', '-w', '-t', '60', 'restart'])
  }

  async promote(): Promise<void> {
    await pgTool('pg_ctl', ['-D', this.dataDir, '-w', '-t', '60', 'promote'])
  }

  /** Stops the server and forgets it (teardown). */
  async destroy(): Promise<void> {
    await this.stop('immediate')
    this.unregister?.()
  }

  log(): string {
    try {
      return readFileSync(join(this.socketDir, `${this.name}.log`), 'utf8')
    } catch {
      return ''
    }
  }

  async query<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[] = [], database = 'postgres'): Promise<T[]> {
    const url = new URL(this.url)
    url.pathname = `/${database}`
    const client = new pg.Client({ connectionString: url.toString(), application_name: 'consent-faults' })
    client.on('error', () => {})
    await client.connect()
    try {
      return (await client.query<T>(sql, params)).rows
    } finally {
      await client.end().catch(() => {})
    }
  }
}

// ---- Redis ----

/** A private redis-server on a free loopback port (no persistence). */
export class RedisServer {
  private child: ChildProcess | undefined
  private unregister: (() => void) | undefined
  private constructor(readonly port: number) {}

  static async start(): Promise<RedisServer> {
    const r = new RedisServer(await freePort())
    await r.start()
    return r
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  get pid(): number | undefined {
    return this.child?.exitCode === null ? this.child.pid : undefined
  }

  async start(): Promise<void> {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.child = child
    child.stdout!.resume()
    child.stderr!.resume()
    this.unregister?.()
    this.unregister = register(() => killPid(child.exitCode === null ? child.pid : undefined))
    for (let i = 0; ; i++) {
      if (await this.ping()) return
      if (child.exitCode !== null || i > 200) throw new Error(`redis-server on ${this.port} did not start`)
      await sleep(25)
    }
  }

  /** PING over a raw socket: true on +PONG. */
  async ping(): Promise<boolean> {
    const { connect } = await import('node:net')
    return new Promise((resolve) => {
      const s = connect(this.port, '127.0.0.1')
      let buf = ''
      const done = (ok: boolean) => {
        s.destroy()
        resolve(ok)
      }
      s.setTimeout(500, () => done(false))
      s.on('error', () => done(false))
      s.on('data', (d) => {
        buf += d
        if (buf.includes('\r\n')) done(buf.startsWith('+PONG'))
      })
      s.write('PING\r\n')
    })
  }

  /** SIGKILL: the store vanishes at once, as a crashed or partitioned Redis would. */
  async kill(): Promise<void> {
    const child = this.child
    if (!child || child.exitCode !== null) return
    child.kill('SIGKILL')
    await once(child, 'exit')
    this.unregister?.()
    this.unregister = undefined
  }
}

// ---- the service ----

export const ROOT_KEY = 'faults-root-key-0123456789abcdef0123'
export const APP_SECRET = 'faults-app-secret'

export interface ServiceExit {
  code: number | null
  signal: NodeJS.Signals | null
}

/**
 * Where the service under test is started from: this checkout, or FAULTS_SERVICE_ROOT (another
 * checkout with its node_modules, e.g. a worktree of an older commit, to see a scenario fail on it).
 */
export const SERVICE_ROOT = process.env.FAULTS_SERVICE_ROOT ?? ROOT

/** The service as a child process (`src/cli.ts serve` under tsx, like the other child-process tests). */
export class Service {
  readonly base: string
  private out: string[] = []
  exit: ServiceExit | undefined
  readonly exited: Promise<ServiceExit>
  private unregister: () => void

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {
    this.base = `http://127.0.0.1:${port}`
    const keep = (d: Buffer) => {
      this.out.push(d.toString())
      if (this.out.length > 400) this.out.splice(0, this.out.length - 400)
    }
    child.stdout!.on('data', keep)
    child.stderr!.on('data', keep)
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exit = { code, signal }
        resolve(this.exit)
      }),
    )
    this.unregister = register(() => killPid(child.exitCode === null && child.signalCode === null ? child.pid : undefined))
    void this.exited.then(() => this.unregister())
  }

  static async start(env: Record<string, string | undefined>, opts: { port?: number } = {}): Promise<Service> {
    const port = opts.port ?? (await freePort())
    const childEnv: NodeJS.ProcessEnv = {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: String(port),
      CONSENT_ADMIN_KEY: ROOT_KEY,
      LOG_LEVEL: 'warn',
      WHATSAPP_APP_SECRETS: APP_SECRET,
      RATE_LIMIT_MAX: '1000000',
      ...env,
    }
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete childEnv[k]
    const child = spawn(process.execPath, [...TS_CHILD_ARGS, 'src/cli.ts', 'serve'], { cwd: SERVICE_ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] })
    const s = new Service(child, port)
    await s.ready()
    return s
  }

  get pid(): number | undefined {
    return this.child.pid
  }

  get alive(): boolean {
    return this.exit === undefined
  }

  /** The last lines the process wrote (for failure messages). */
  output(lines = 40): string {
    return this.out.join('').split('\n').slice(-lines).join('\n')
  }

  private async ready(): Promise<void> {
    for (let i = 0; ; i++) {
      if (this.exit) throw new Error(`the service exited during start (${JSON.stringify(this.exit)}):\n${this.output()}`)
      try {
        if ((await fetch(`${this.base}/healthz`)).ok) return
      } catch {}
      if (i > 1200) throw new Error(`the service did not answer /healthz within 60 s:\n${this.output()}`)
      await sleep(50)
    }
  }

  async kill9(): Promise<void> {
    if (!this.alive) return
    this.child.kill('SIGKILL')
    await this.exited
  }

  async sigterm(): Promise<ServiceExit> {
    if (this.alive) this.child.kill('SIGTERM')
    return this.exited
  }
}
