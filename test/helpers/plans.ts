/**
 * The plans PostgreSQL runs for a client's statements, and for the statements inside the functions
 * those call (auto_explain with nested statements, sent to the client as notices): for tests that
 * read which plan a cached statement kept.
 */
import type pg from 'pg'

/** Push every plan the client is sent (auto_explain's notices) to `plans`. */
export function collectPlans(client: pg.Client | pg.PoolClient, plans: string[]): void {
  client.on('notice', (n) => {
    if (n.message?.includes('duration:') && n.message.includes('\n')) plans.push(n.message)
  })
}

/** Turn auto_explain on for this client; every plan from now on is pushed to the array returned. */
export async function capturePlans(client: pg.Client): Promise<string[]> {
  const plans: string[] = []
  collectPlans(client, plans)
  await client.query(`LOAD 'auto_explain'`)
  await client.query(`SET auto_explain.log_min_duration = 0`)
  await client.query(`SET auto_explain.log_nested_statements = on`)
  await client.query(`SET client_min_messages = log`)
  return plans
}
