/**
 * Route-level hooks added from an onRoute hook (auth, metrics): Fastify gives a route's hook option
 * as one function, an array, or nothing.
 */
export function withFirst<H>(first: H, hooks: H | H[] | undefined): H[] {
  return [first, ...(hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks])]
}
