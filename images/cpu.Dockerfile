# syntax=docker/dockerfile:1.7
# alphafactory CPU runtime image: the library (extras cloud, registry, xgboost, ngboost,
# sources, torch with CPU-only torch), kfp, baked in so KFP components run with install_kfp_package=False.
#
# Build from the repository root:
#   docker build -f images/cpu.Dockerfile -t alphafactory-cpu:dev .
#
# Base image pinned by digest. The digest below is the python:3.11.10-slim-bookworm
# image index as found in several independent public Dockerfiles; it was NOT checked
# against Docker Hub from this environment (no registry access). Refresh with:
#   docker buildx imagetools inspect python:3.11.10-slim-bookworm

########################################################################################
# builder: build the project wheel and a self-contained virtualenv in /opt/venv
########################################################################################
FROM python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16 AS builder

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_VERSION=24.3.1

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

RUN python -m venv /opt/venv \
 && pip install --no-cache-dir "pip==${PIP_VERSION}"

# torch first, from the CPU-only index (no CUDA wheels in the CPU image), at the version
# constraints.txt pins, so the `[torch]` extra below finds it installed; the layer is reused
# as long as constraints.txt does not change.
COPY constraints.txt /tmp/torch-constraints.txt
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" -c /tmp/torch-constraints.txt torch

WORKDIR /build
COPY pyproject.toml README.md constraints.txt ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines

# Wheel first (no editable/source install in the image), then install it with its extras.
# The local project wheel is installed by path; its dependencies come from pyproject.toml.
# hadolint ignore=DL3013
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && wheel="$(find /wheels -name 'alphafactory-*.whl' | head -n 1)" \
 && pip install --no-cache-dir -c constraints.txt "${wheel}[cloud,registry,xgboost,ngboost,torch,sources]" \
 && python -c "import alphafactory, kfp, torch, xgboost, ngboost; print('ok', kfp.__version__, torch.__version__)" \
 && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} +

########################################################################################
# runtime: the venv only, run as a non-root numeric user
########################################################################################
FROM python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16 AS runtime

ARG APP_UID=10001
ARG APP_GID=10001

LABEL org.opencontainers.image.title="alphafactory-cpu" \
      org.opencontainers.image.description="alphafactory runtime (CPU): library, kfp, CPU torch" \
      org.opencontainers.image.source="https://github.com/REPLACE_ME_ORG/alphafactory"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# libgomp1: OpenMP runtime that the LightGBM wheel links against (slim images lack it).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid "${APP_GID}" alphafactory \
 && useradd --system --uid "${APP_UID}" --gid "${APP_GID}" --no-create-home \
        --home-dir /tmp --shell /usr/sbin/nologin alphafactory

COPY --from=builder /opt/venv /opt/venv

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /tmp

# Numeric UID:GID so Kubernetes can verify runAsNonRoot without resolving names.
USER 10001:10001

# Batch image (KFP tasks, CronJobs): there is no long-running process to probe.
HEALTHCHECK NONE

CMD ["alphafactory", "--help"]
