/**
 * Process, database and load helpers of the benchmark suite (bench/run.mjs). Every child process
 * is started in its own process group and registered here; `cleanup()` (run on exit, on error and
 * on SIGINT/SIGTERM) kills each group by its id and drops every database this run created.
 */
import pg from 'pg'
import net from 'node:net'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readdirSync, readFileSync } from 'node:fs'
import autocannon from 'autocannon'

export const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'

const children = new Set()
const databases = new Set()

export function dbUrl(name) {
  const u = new URL(ADMIN_URL)
  u.pathname = `/${name}`
  return u.toString()
}

export async function adminQuery(sql, params) {
  const c = new pg.Client({ connectionString: ADMIN_URL })
  await c.connect()
  try {
    return await c.query(sql, params)
  } finally {
    await c.end()
  }
}

/** Creates an empty database (registered for dropping) and returns its URL. */
export async function createDatabase(name) {
  databases.add(name)
  await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  await adminQuery(`CREATE DATABASE ${name}`)
  return dbUrl(name)
}

export async function dropDatabase(name) {
  await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  databases.delete(name)
}

export async function freePort() {
  const srv = net.createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const { port } = srv.address()
  await new Promise((r) => srv.close(r))
  return port
}

/**
 * Spawns `node <args>` in its own process group, registered for cleanup. stdout/stderr are
 * collected (the last 64 KiB) and, with `echo`, passed through prefixed.
 */
export function spawnNode(args, { env = {}, cleanEnv = false, cwd, label = 'child', echo = true, onLine } = {}) {
  const child = spawn(process.execPath, args, { cwd, env: cleanEnv ? env : { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  child.label = label
  child.output = ''
  child.echoed = 0
  const feed = (stream) => {
    let partial = ''
    stream.setEncoding('utf8').on('data', (d) => {
      child.output = (child.output + d).slice(-65536)
      const lines = (partial + d).split('\n')
      partial = lines.pop()
      for (const l of lines) {
        if (onLine) onLine(l)
        if (echo && ++child.echoed <= 20) process.stderr.write(`  [${label}] ${l}\n`)
        else if (echo && child.echoed === 21) process.stderr.write(`  [${label}] (further output not shown)\n`)
      }
    })
  }
  feed(child.stdout)
  feed(child.stderr)
  children.add(child)
  child.exited = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      children.delete(child)
      resolve({ code, signal })
    }),
  )
  return child
}

/** SIGTERM to the child's process group, SIGKILL after `graceMs`. */
export async function stopChild(child, graceMs = 5000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(-child.pid, 'SIGTERM')
  } catch {}
  const t = setTimeout(() => {
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {}
  }, graceMs)
  await child.exited
  clearTimeout(t)
}

export async function waitHttp(url, child, timeoutMs = 30000) {
  const t0 = Date.now()
  for (;;) {
    if (child && child.exitCode !== null) throw new Error(`${child.label} exited (${child.exitCode}) before answering ${url}:\n${child.output.slice(-2000)}`)
    try {
      if ((await fetch(url)).ok) return
    } catch {}
    if (Date.now() - t0 > timeoutMs) throw new Error(`${url} did not answer within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** VmRSS and VmHWM of a process, in MB (null when it is gone). */
export function memOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? 0)
    return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 }
  } catch {
    return null
  }
}

const CLK_TCK = 100

/** /proc/<pid>/stat: the command name and the fields after it (field 3 of proc(5) is f[0]); null when gone. */
function procStat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const close = s.lastIndexOf(')')
    return { comm: s.slice(s.indexOf('(') + 1, close), f: s.slice(close + 2).split(' ') }
  } catch {
    return null
  }
}
/** CPU seconds a stat used itself (utime + stime) and what its waited-for children used (cutime + cstime). */
const ownCpu = (f) => (Number(f[11]) + Number(f[12])) / CLK_TCK
const childrenCpu = (f) => (Number(f[13]) + Number(f[14])) / CLK_TCK

/** CPU seconds (user + system) a process has used so far (null when gone). */
export function cpuOf(pid) {
  const st = procStat(pid)
  return st ? ownCpu(st.f) : null
}

/**
 * CPU seconds used so far by PostgreSQL: every live server process (backends, WAL writer, ...) plus
 * what the postmaster's exited children used (its cutime/cstime), so a connection that closes
 * mid-run keeps its share.
 */
export function postgresCpu() {
  const procs = []
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    const st = procStat(d)
    if (st?.comm.startsWith('postgres')) procs.push({ pid: Number(d), ppid: Number(st.f[1]), f: st.f })
  }
  const pids = new Set(procs.map((p) => p.pid))
  return procs.reduce((a, p) => a + ownCpu(p.f) + (pids.has(p.ppid) ? 0 : childrenCpu(p.f)), 0)
}

/** CPU seconds the whole machine has been busy (every CPU; /proc/stat: all but idle and iowait). */
export function machineCpu() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal (guest time is inside user)
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / CLK_TCK
  } catch {
    return null
  }
}

/**
 * CPU used during one measured run, per request in ms: the service (or bare server) process, all
 * of PostgreSQL, this process (autocannon, the load generator), and the whole machine. On a shared
 * 2-core machine this says where a request's time goes; the machine's figure bounds the parts
 * (a row whose parts add up to more than it has a misread part: see cpuNote in run.mjs).
 */
export function cpuMeter(pid) {
  const start = { svc: cpuOf(pid), pg: postgresCpu(), gen: process.cpuUsage(), machine: machineCpu() }
  return {
    stop(requests) {
      const gen = process.cpuUsage(start.gen)
      const per = (s) => (requests > 0 ? (s * 1000) / requests : null)
      const svc = cpuOf(pid)
      const machine = machineCpu()
      return {
        server: svc == null || start.svc == null ? null : per(svc - start.svc),
        postgres: per(postgresCpu() - start.pg),
        generator: per((gen.user + gen.system) / 1e6),
        machine: machine == null || start.machine == null ? null : per(machine - start.machine),
      }
    },
  }
}

/** Samples a process's RSS every 100 ms until `stop()`; returns the peak (MB). */
export function rssSampler(pid) {
  let peak = memOf(pid)?.rss ?? 0
  const timer = setInterval(() => {
    const m = memOf(pid)
    if (m && m.rss > peak) peak = m.rss
  }, 100)
  return {
    stop() {
      clearInterval(timer)
      const m = memOf(pid)
      return { peak: Math.max(peak, m?.rss ?? 0), rss: m?.rss ?? null, hwm: m?.hwm ?? null }
    },
  }
}

/**
 * One autocannon run; returns the summary we keep. Percentiles are computed here from every 2xx
 * answer's own time (autocannon's 'response' event, in fractional milliseconds): autocannon's
 * histogram keeps whole milliseconds, too coarse for answers that take one or two.
 */
export async function load(opts) {
  const times = []
  const run = autocannon({ connections: 10, duration: 10, ...opts })
  run.on('response', (_client, status, _bytes, ms) => {
    if (status >= 200 && status < 300) times.push(ms)
  })
  const r = await run
  times.sort((a, b) => a - b)
  const pct = (q, fallback) => (times.length === 0 ? fallback : Math.round(times[Math.min(times.length - 1, Math.ceil(q * times.length) - 1)] * 100) / 100)
  return {
    requests: r.requests.total,
    rps: r.requests.average,
    durationS: r.duration,
    p50: pct(0.5, r.latency.p50),
    p90: pct(0.9, r.latency.p90),
    p99: pct(0.99, r.latency.p99),
    max: r.latency.max,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    statusCodes: r.statusCodeStats,
  }
}

export async function cleanup() {
  await Promise.all([...children].map((c) => stopChild(c, 3000)))
  for (const name of [...databases]) {
    try {
      await dropDatabase(name)
    } catch (err) {
      process.stderr.write(`could not drop database ${name}: ${err.message}\n`)
    }
  }
}

let installed = false
/** Kill children and drop databases on SIGINT/SIGTERM; SIGKILL the groups on any exit. */
export function installCleanup() {
  if (installed) return
  installed = true
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, async () => {
      process.stderr.write(`\n${sig}: stopping children, dropping databases\n`)
      await cleanup().catch(() => {})
      process.exit(130)
    })
  }
  process.on('exit', () => {
    for (const c of children) {
      try {
        process.kill(-c.pid, 'SIGKILL')
      } catch {}
    }
  })
}
