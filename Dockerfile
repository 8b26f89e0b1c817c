# syntax=docker/dockerfile:1
# One image for every role: the command picks it (beat, worker, db migrate, or any CLI command).
#   docker build -t sp-scheduler .
#   docker run --rm -e SP_DATABASE_URL=... -e SP_REDIS_URL=... sp-scheduler worker -c 4
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv "$VIRTUAL_ENV" \
 && groupadd --system --gid 10001 sp \
 && useradd --system --uid 10001 --gid sp --home-dir /app --no-create-home --shell /usr/sbin/nologin sp

WORKDIR /app

# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when they change, not on
# every code edit. The build backend is installed here too so the project install below needs no network.
COPY pyproject.toml /tmp/pyproject.toml
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import tomllib; p = tomllib.load(open('/tmp/pyproject.toml', 'rb')); print('\n'.join(p['project']['dependencies'] + p['build-system']['requires']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt /tmp/pyproject.toml

# The project without its dependencies, built from a bind mount of the context so no second copy of
# the source stays in the image (the build's scratch files are discarded with the mount).
RUN --mount=type=bind,target=/src,rw \
    pip install --no-cache-dir --no-deps --no-build-isolation /src

# The application's config and content; compose and k8s mount their own over it so edits need no rebuild.
COPY services/ /app/services/
# Jobs write their output here (SP_OUTPUT_DIR, default web/dist): the only place the app user may write.
RUN mkdir -p /app/web && chown -R sp:sp /app/web

# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
ENV HOME=/app

# Role-agnostic default: Postgres (schema current) and Redis answer. Services narrow it per role with
# `sp-scheduler health --role beat|worker` (this container's process is alive too).
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
    CMD ["sp-scheduler", "health"]

ENTRYPOINT ["sp-scheduler"]
CMD ["--help"]
