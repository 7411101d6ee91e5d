# syntax=docker/dockerfile:1
# The one image of every Nubes process: `nubes api`, `gateway`, `worker`,
# `dispatcher`, `migrate`, `backup` (compose.yaml picks the command).
#
# Three stages keep the runtime small: the portal is built with Node, the
# package and its dependencies become wheels with a compiler at hand, and the
# runtime gets only the wheels, no compiler and no Node. The runtime runs as
# an unprivileged user and writes nowhere but /var/lib/nubes (mount a volume
# there for the embedded SQLite of `nubes serve`, or for backups) and /tmp, so
# it runs with a read-only root filesystem.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS portal
WORKDIR /build/portal
COPY portal/package.json portal/package-lock.json portal/.npmrc ./
RUN npm ci --no-audit --no-fund
COPY portal/ ./
# vite writes into ../src/nubes/portal_dist, where the wheel picks it up.
RUN npm run build

FROM ${PYTHON_IMAGE} AS wheels
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY pyproject.toml README.md LICENSE ./
COPY src/ src/
COPY --from=portal /build/src/nubes/portal_dist/ src/nubes/portal_dist/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
# postgresql-client: pg_dump and pg_restore for `nubes backup` (Debian
# bookworm's 15, the major version compose.yaml runs).
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 nubes \
    && useradd --system --uid 10001 --gid nubes --home-dir /var/lib/nubes --shell /usr/sbin/nologin nubes \
    && install -d -o nubes -g nubes /var/lib/nubes /var/lib/nubes/backups
COPY --from=wheels /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels nubes \
    && rm -rf /wheels
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NUBES_DATABASE_URL=sqlite:////var/lib/nubes/nubes.db \
    NUBES_OPS_PORT=9100
WORKDIR /var/lib/nubes
USER nubes:nubes
EXPOSE 8080/tcp 5002/udp 5003/udp 5005/udp 9100/tcp
# Every process type answers /ready on its ops port (NUBES_OPS_PORT): healthy
# once its database, RabbitMQ and Redis answer and the schema is migrated.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["nubes", "healthcheck", "--ready"]
ENTRYPOINT ["nubes"]
CMD ["serve"]
