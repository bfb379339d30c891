/**
 * The Braze-compatible routes (docs/braze.md), answering in Braze's shapes: `{"message": "success"}`
 * with non-fatal item errors in errors[], and `{"message": ...}` errors (config.errorShape = 'braze').
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import usersTrack from './users-track.js'
import subscriptionStatus from './subscription-status.js'

const braze: FastifyPluginAsyncTypebox = async (app) => {
  await app.register(usersTrack)
  await app.register(subscriptionStatus)
}

export default braze
