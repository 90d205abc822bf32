# syntax=docker/dockerfile:1.7
# alphafactory GPU runtime image: CUDA runtime base, the library with all extras
# (cloud, registry, xgboost, ngboost, torch) and kfp, so KFP components run with
# install_kfp_package=False on the GPU node pool.
#
# Build from the repository root:
#   docker build -f images/gpu.Dockerfile -t alphafactory-gpu:dev .
#
# Base image pinned by digest. The digest below is nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04
# as found in public Dockerfiles and in a public `docker build` log that resolved it; it
# was NOT checked against Docker Hub from this environment (no registry access). Refresh:
#   docker buildx imagetools inspect nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04

########################################################################################
# builder: Python 3.11 from Ubuntu (jammy universe), the project wheel and /opt/venv
########################################################################################
FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04@sha256:2fcc4280646484290cc50dce5e65f388dd04352b07cbe89a635703bd1f9aedb6 AS builder

ARG TORCH_VERSION=2.5.1
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124
ARG PIP_VERSION=24.3.1

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3.11 -m venv /opt/venv \
 && pip install --no-cache-dir "pip==${PIP_VERSION}"

# torch from the CUDA 12.4 index, matching the base image's CUDA runtime.
RUN pip install --no-cache-dir --extra-index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

WORKDIR /build
COPY pyproject.toml README.md constraints.txt ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines

# The local project wheel is installed by path; its dependencies come from pyproject.toml.
# hadolint ignore=DL3013
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && wheel="$(find /wheels -name 'alphafactory-*.whl' | head -n 1)" \
 && pip install --no-cache-dir -c constraints.txt "${wheel}[cloud,registry,xgboost,ngboost,torch]" \
 && python -c "import alphafactory, kfp, torch, xgboost, ngboost; print('ok', kfp.__version__, torch.__version__)" \
 && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} +

########################################################################################
# runtime: CUDA runtime + the Python 3.11 interpreter the venv points at, non-root
########################################################################################
FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04@sha256:2fcc4280646484290cc50dce5e65f388dd04352b07cbe89a635703bd1f9aedb6 AS runtime

ARG APP_UID=10001
ARG APP_GID=10001

LABEL org.opencontainers.image.title="alphafactory-gpu" \
      org.opencontainers.image.description="alphafactory runtime (CUDA 12.4): library, kfp, torch" \
      org.opencontainers.image.source="https://github.com/REPLACE_ME_ORG/alphafactory"

ENV DEBIAN_FRONTEND=noninteractive

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Only the interpreter (the venv's python symlinks to /usr/bin/python3.11); no pip, no venv
# package, no compilers in the runtime stage.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 libgomp1 \
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
    MPLCONFIGDIR=/tmp/matplotlib \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

WORKDIR /tmp

USER 10001:10001

HEALTHCHECK NONE

CMD ["alphafactory", "--help"]
