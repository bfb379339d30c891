/**
 * The plans PostgreSQL runs for a client's statements, and for the statements inside the functions
 * those call (auto_explain with nested statements, sent to the client as notices): for tests that
 * read which plan a cached statement kept. Every plan from now on is pushed to the array returned.
 */
import type pg from 'pg'

export async function capturePlans(client: pg.Client): Promise<string[]> {
  const plans: string[] = []
  client.on('notice', (n) => {
    if (n.message?.includes('duration:') && n.message.includes('\n')) plans.push(n.message)
  })
  await client.query(`LOAD 'auto_explain'`)
  await client.query(`SET auto_explain.log_min_duration = 0`)
  await client.query(`SET auto_explain.log_nested_statements = on`)
  await client.query(`SET client_min_messages = log`)
  return plans
}
