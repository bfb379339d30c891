/**
 * A private PostgreSQL cluster for tests that stop, crash or restart the database: the shared server
 * on 5432 must never be touched, so such tests start their own from the machine's binaries
 * (`pg_config --bindir`) on a free loopback port, in a temporary directory, and remove it at teardown.
 *
 * PostgreSQL refuses to run as root: when the test runs as root, every server command runs as the
 * `postgres` OS user (`runuser -u postgres --`), which then owns the data directory.
 *
 *   const pg = await startPrivateCluster(t)          // initdb + start, trust auth, user postgres
 *   await migratePostgres(pg.url())                  // the app's schema in database `postgres`
 *   await pg.stop('immediate'); await pg.start()     // faults
 *   await pg.restart('immediate')
 *   await pg.terminateBackends('consent-ledger')     // pg_terminate_backend by application_name
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import type { Test } from 'tap'

export type StopMode = 'smart' | 'fast' | 'immediate'

export interface PrivateClusterOptions {
  /** Extra `-c name=value` server settings (e.g. `{ fsync: 'off' }` for speed, `max_connections`). */
  settings?: Record<string, string>
  /** A fixed port (default: a free loopback port). */
  port?: number
}

export interface PrivateCluster {
  readonly port: number
  readonly dataDir: string
  /** Connection URL of `database` (default `postgres`) as user postgres over TCP on 127.0.0.1. */
  url(database?: string): string
  start(): Promise<void>
  stop(mode?: StopMode): Promise<void>
  restart(mode?: StopMode): Promise<void>
  /** True while the postmaster answers. */
  running(): boolean
  /** PID of the running postmaster (from postmaster.pid), or undefined. */
  postmasterPid(): number | undefined
  /** Terminates every backend whose application_name starts with `applicationName`; returns how many. */
  terminateBackends(applicationName: string): Promise<number>
  /** Stops the server (immediate) and deletes its directory. Registered as teardown by startPrivateCluster. */
  destroy(): Promise<void>
}

const bindir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim()
const asRoot = process.getuid?.() === 0

/** Runs a PostgreSQL binary (as the postgres user when we are root); throws with its output on failure. */
function pgBin(bin: string, args: string[]): string {
  const cmd = asRoot ? 'runuser' : join(bindir, bin)
  const argv = asRoot ? ['-u', 'postgres', '--', join(bindir, bin), ...args] : args
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 120_000 })
  if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`)
  return r.stdout
}

/** A port nobody listens on right now (the OS picks it; tiny race until the server binds it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address()
      const port = typeof addr === 'object' && addr ? addr.port : 0
      s.close(() => resolve(port))
    })
  })
}

export async function startPrivateCluster(t: Pick<Test, 'teardown'> | null, opts: PrivateClusterOptions = {}): Promise<PrivateCluster> {
  const base = mkdtempSync(join(tmpdir(), 'cl-pg-'))
  const dataDir = join(base, 'data')
  const logFile = join(base, 'server.log')
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
    chownSync(base, uid, gid)
  }
  pgBin('initdb', ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C'])
  const port = opts.port ?? (await freePort())
  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    port: String(port),
    // The socket lives in our own directory (the default one may not be writable by us).
    unix_socket_directories: base,
    ...opts.settings,
  }
  const serverOpts = Object.entries(settings)
    .map(([k, v]) => `-c ${k}=${v}`)
    .join(' ')

  const cluster: PrivateCluster = {
    port,
    dataDir,
    url: (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`,
    async start() {
      pgBin('pg_ctl', ['-D', dataDir, '-l', logFile, '-o', serverOpts, '-w', '-t', '60', 'start'])
    },
    async stop(mode = 'fast') {
      pgBin('pg_ctl', ['-D', dataDir, '-m', mode, '-w', '-t', '60', 'stop'])
    },
    async restart(mode = 'fast') {
      await cluster.stop(mode)
      await cluster.start()
    },
    running() {
      const pid = cluster.postmasterPid()
      if (pid === undefined) return false
      try {
        process.kill(pid, 0)
        return true
      } catch {
        return false
      }
    },
    postmasterPid() {
      try {
        const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
        return Number.isInteger(pid) && pid > 0 ? pid : undefined
      } catch {
        return undefined
      }
    },
    async terminateBackends(applicationName: string) {
      const c = new pg.Client({ connectionString: cluster.url(), application_name: 'private-cluster-admin' })
      await c.connect()
      try {
        const r = await c.query<{ n: number }>(
          `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
            WHERE pid <> pg_backend_pid() AND starts_with(application_name, $1)`,
          [applicationName],
        )
        return r.rows[0]?.n ?? 0
      } finally {
        await c.end()
      }
    },
    async destroy() {
      if (cluster.running()) {
        try {
          await cluster.stop('immediate')
        } catch {
          const pid = cluster.postmasterPid()
          if (pid) process.kill(pid, 'SIGKILL')
        }
      }
      rmSync(base, { recursive: true, force: true })
    },
  }
  t?.teardown(() => cluster.destroy())
  try {
    await cluster.start()
  } catch (err) {
    await cluster.destroy()
    throw err
  }
  return cluster
}
