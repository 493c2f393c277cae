# The relay for Cloud Run (or any container host): `relay` on $PORT, queue in PostgreSQL.
# Build: docker build -t rose-relay .   Run: see docs/relay.md for the environment it needs.
FROM oven/bun:1.4-slim
WORKDIR /app
COPY package.json package-lock.json ./
# Bun reads package-lock.json; only runtime dependencies are installed.
RUN bun install --production --ignore-scripts
COPY lib ./lib
COPY scripts ./scripts
ENV NODE_ENV=production PORT=8080
USER bun
# RELAY_DATABASE_URL (postgres://...) selects the PostgreSQL store; several instances may share it.
CMD ["bun", "scripts/relay.ts", "--host", "0.0.0.0"]
