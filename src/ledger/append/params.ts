import { tokenArray } from '../token-array.js'

/** The parameters of one statement, $1 being the workspace; each add returns its placeholder. */
export class Params {
  readonly values: unknown[]

  constructor(workspaceId: string) {
    this.values = [workspaceId]
  }

  add(v: unknown): string {
    this.values.push(v)
    return `$${this.values.length}`
  }

  /** An array of tokens, sent as an array literal built directly (see tokenArray). */
  tokens(v: readonly unknown[]): string {
    return this.add(tokenArray(v))
  }
}

/** One data-modifying CTE of the write statement: `tag` names it in the prepared statement's name. */
export interface Part {
  tag: string
  sql: string
}
