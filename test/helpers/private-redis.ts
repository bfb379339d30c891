/**
 * A private redis-server for tests that stop Redis (the shared one on 6379 must never be touched):
 * spawned on a free loopback port, nothing persisted, stopped by its own PID, killed at teardown.
 *
 *   const redis = await startPrivateRedis(t)   // redis.url: redis://127.0.0.1:<port>
 *   await redis.stop(); await redis.start()    // an outage; same port after the restart
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { Test } from 'tap'
import { freePort } from './private-cluster.js'

export interface PrivateRedis {
  readonly port: number
  readonly url: string
  readonly pid: number | undefined
  start(): Promise<void>
  /** SIGTERM (SIGKILL with `kill`) to our redis-server, and wait for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>
}

export async function startPrivateRedis(t: Pick<Test, 'teardown'> | null): Promise<PrivateRedis> {
  const port = await freePort()
  let child: ChildProcess | undefined
  const redis: PrivateRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child?.pid
    },
    async start() {
      const c = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      child = c
      let out = ''
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 15_000)
        c.stdout!.on('data', (d: Buffer) => {
          out += d.toString()
          if (out.includes('Ready to accept connections')) {
            clearTimeout(timer)
            resolve()
          }
        })
        c.once('exit', (code) => {
          clearTimeout(timer)
          reject(new Error(`redis-server exited (${code}): ${out}`))
        })
      })
      c.stdout!.resume()
      c.stderr!.resume()
    },
    async stop(signal = 'SIGTERM') {
      const c = child
      if (!c || c.exitCode !== null || c.signalCode !== null) return
      const exited = once(c, 'exit')
      c.kill(signal)
      await exited
    },
  }
  t?.teardown(() => redis.stop('SIGKILL'))
  await redis.start()
  return redis
}
