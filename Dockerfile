# syntax=docker/dockerfile:1
# kbsearch image: web (gunicorn), Celery workers and beat, migrations and the model-prepare step all
# run this one image with a different command (helm/kbsearch). docs/image.md explains the choices
# and how the image was proven on a machine without a container runtime (scripts/image/assemble.sh).
#
# Reproducible inputs:
# - The base: Debian bookworm slim, the same in both stages. Pin it by digest where you build:
#     docker buildx imagetools inspect debian:bookworm-20250520-slim   # prints the sha256 digest
#     docker build --build-arg DEBIAN_IMAGE=debian:bookworm-20250520-slim@sha256:<digest> .
#   (bookworm-20250520 matches the Debian snapshot the development machines install from.)
# - Python packages: requirements.txt pins what kbsearch imports; requirements.lock (pip freeze of
#   the assembled image) pins everything else as constraints. torch comes from the PyTorch CPU index:
#   any other source of torch==2.13.0 pulls several GB of CUDA libraries.
#
# Runtime contract (the chart relies on it): uid/gid 10001, working directory /app, the root
# filesystem read-only; the only writable paths are /app/var (KBSEARCH_VAR_DIR) and /tmp, both
# declared as volumes. Code and collected static files belong to root and cannot be changed at run
# time. The embedding model is built by `manage.py build_model` onto a volume
# (KBSEARCH_MODEL_CACHE_DIR) unless BAKE_MODEL=1 bakes it into /app/models.

ARG DEBIAN_IMAGE=debian:bookworm-20250520-slim

# --- builder: compilers and headers, the virtual environment, collected static files -------------
FROM ${DEBIAN_IMAGE} AS builder
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG BAKE_MODEL=0
# python-ldap compiles against OpenLDAP and SASL; nothing here reaches the final stage but /opt/venv
# and /app.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3.11 python3.11-venv python3.11-dev gcc libc6-dev libldap2-dev libsasl2-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt requirements.lock /build/
# torch first and alone from the CPU index (its own dependencies come next, from PyPI, pinned by the
# lock), then everything else with torch already satisfied.
RUN pip install --index-url "${TORCH_INDEX_URL}" --no-deps torch==2.13.0 \
    && pip install --constraint /build/requirements.lock --requirement /build/requirements.txt \
    && pip uninstall --yes pip setuptools wheel
WORKDIR /app
COPY manage.py gunicorn.conf.py pyproject.toml ./
COPY access/ access/
COPY connectors/ connectors/
COPY embeddings/ embeddings/
COPY kbsearch/ kbsearch/
# Bytecode of the app now (pip compiled the venv's): at run time the root filesystem is read-only
# and PYTHONDONTWRITEBYTECODE is set.
# Static files go to /app/static, outside the writable var directory.
RUN python -m compileall -q /app \
    && KBSEARCH_VAR_DIR=/tmp/build-var KBSEARCH_STATIC_ROOT=/app/static \
        python manage.py collectstatic --noinput --verbosity 0 \
    && mkdir -p /app/models \
    && if [ "${BAKE_MODEL}" = "1" ]; then \
        KBSEARCH_VAR_DIR=/tmp/build-var KBSEARCH_MODEL_CACHE_DIR=/app/models python manage.py build_model \
        && rm -f /app/models/.*.lock; \
    fi \
    && rm -rf /tmp/build-var

# --- final: runtime libraries only ----------------------------------------------------------------
FROM ${DEBIAN_IMAGE}
# python3.11 (the interpreter the venv links to), OpenLDAP and SASL client libraries for
# python-ldap, CA certificates for LDAPS and HTTPS. No compiler, no headers, no pip.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3.11 libldap-2.5-0 libsasl2-2 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 kbsearch \
    && useradd --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin kbsearch
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
RUN install -d -o 10001 -g 10001 -m 0750 /app/var
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    KBSEARCH_VAR_DIR=/app/var \
    KBSEARCH_STATIC_ROOT=/app/static \
    KBSEARCH_WEB_BIND=0.0.0.0:8000
WORKDIR /app
USER 10001:10001
VOLUME ["/app/var", "/tmp"]
EXPOSE 8000
# The web process; the chart gives workers, beat, migrations and model-prepare their own command.
CMD ["gunicorn", "--config", "gunicorn.conf.py", "kbsearch.wsgi"]
