# syntax=docker/dockerfile:1
#
# realtime-gateway production image.
#
#   docker build -t realtime-gateway:0.1.0 .
#   docker run --rm -p 3000:3000 -e DATABASE_URL=... -e REDIS_URL=... -e JWT_SECRET=... realtime-gateway:0.1.0
#
# Base: Node.js 24 ("Krypton", LTS), Debian 12 slim. The same tag is used by every stage so the
# native prebuilds (bufferutil, utf-8-validate) match the runtime's glibc and Node ABI.
# Pin the digest as well when you build for production, and let Renovate/Dependabot bump both:
#   docker buildx imagetools inspect node:24.21.0-bookworm-slim --format '{{json .Manifest.Digest}}'
#   FROM node:24.21.0-bookworm-slim@sha256:<digest> AS build
#
# The image runs the gateway against an external PostgreSQL (DATABASE_URL) and, for more than one
# replica, Redis (REDIS_URL). Embedded PostgreSQL (the no-DATABASE_URL development mode) is not
# included: its binaries are optional dependencies that the production install leaves out.

# ---- build: compile TypeScript with the dev dependencies --------------------------------------
FROM node:24.21.0-bookworm-slim AS build
WORKDIR /app
# Lockfile before sources: the dependency layer is reused until package*.json change.
COPY package.json package-lock.json ./
# --ignore-scripts: package.json's "prepare" would build before the sources are copied, and no
# dependency needs an install script to compile TypeScript.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# the client package (client/): built first, copied into dist/client for `realtime-gateway/client`
COPY client ./client
RUN npm run build

# ---- prod-deps: production dependencies only ---------------------------------------------------
FROM node:24.21.0-bookworm-slim AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
# bufferutil and utf-8-validate load their bundled linux-x64 prebuilds through node-gyp-build at
# run time, so skipping install scripts loses nothing (on arm64, which has no prebuild, ws falls back
# to its JavaScript code); --omit=optional drops the embedded PostgreSQL binaries.
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# ---- runtime -----------------------------------------------------------------------------------
FROM node:24.21.0-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Everything stays owned by root and read-only for the process (Kubernetes mounts the root
# filesystem read-only anyway); only /tmp (DATA_DIR in the Helm chart) needs to be writable.
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# The image's "node" user, by number so Kubernetes can verify runAsNonRoot.
USER 1000:1000
EXPOSE 3000 9464
# For docker and compose; Kubernetes ignores HEALTHCHECK and uses the chart's probes instead.
# The slim image has no curl: Node's fetch checks liveness on PORT (default 3000).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
# Exec form: node is PID 1 and receives SIGTERM itself (no shell, no npm in between), drains for
# SHUTDOWN_GRACE_MS and exits 0.
CMD ["node", "dist/main.js"]
