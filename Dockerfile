# syntax=docker/dockerfile:1
# Consent ledger service image. Build: docker build -t consent-ledger .
# Runs as the unprivileged `node` user; migrates (under an advisory lock, safe with replicas)
# and then serves. Set MIGRATE_ON_START=false to run `migrate` as a separate release step instead.

# ---- build: full install, compile TypeScript, then drop devDependencies -------------------------
FROM node:22-bookworm-slim AS build
WORKDIR /app
# Manifests first so the npm ci layer is cached until dependencies change.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# ---- runtime ------------------------------------------------------------------------------------
FROM node:22-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/app/data
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/migrations ./migrations
# DATA_DIR is only used when DATABASE_URL is unset (embedded PGlite); it must be writable by `node`.
RUN mkdir -p /app/data && chown node:node /app/data
VOLUME ["/app/data"]
USER node
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# `docker run IMAGE` migrates then serves; `docker run IMAGE keys create …` migrates then runs that
# subcommand. `exec` replaces the shell, so node itself receives SIGTERM and shuts down gracefully.
ENTRYPOINT ["/bin/sh", "-c", "if [ \"${MIGRATE_ON_START:-true}\" = true ]; then node dist/src/cli.js migrate || exit 1; fi; exec node dist/src/cli.js \"$@\"", "consent-ledger"]
CMD ["serve"]
