# The gridwatch image: workers, gateway and CLI. The cockpit's front-end libraries come
# from the npm registry in a build stage; nothing is fetched at run time.
FROM node:20-slim AS web
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gridwatch ./gridwatch
COPY schemas ./schemas
COPY streams ./streams
COPY agents ./agents
COPY ws ./ws
COPY stack ./stack
COPY --from=web /build/node_modules ./node_modules
RUN python ws/build_static.py \
 && pip install --no-cache-dir '.[forecast]' \
 && rm -rf node_modules
# The workers' data directory (GRIDWATCH_HOME) must be writable by the user they run as.
ENV GRIDWATCH_HOME=/var/lib/gridwatch
RUN mkdir -p /var/lib/gridwatch && chown nobody /var/lib/gridwatch
USER nobody
EXPOSE 8765
CMD ["gridwatch", "--help"]
