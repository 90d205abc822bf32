# syntax=docker/dockerfile:1.7
# alphafactory GPU runtime image: CUDA runtime base, the library with all extras
# (cloud, registry, xgboost, ngboost, sources, torch) and kfp, so KFP components run with
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

# torch 2.5.1 and its whole dependency closure, each pinned and hashed, from PyPI only: PyPI's
# Linux x86_64 torch 2.5.1 wheel is the CUDA 12.4 build (the nvidia-*-cu12 wheels below are its
# CUDA libraries), matching the base image's CUDA 12.4 runtime. No second index, so no
# dependency confusion, and pip refuses any file whose sha256 differs (--require-hashes).
# Regenerate (hashes from PyPI's index, nothing downloaded) when bumping torch:
#   pip install --dry-run --target /tmp/t --report r.json --only-binary=:all: \
#     --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --python-version 3.11 \
#     --implementation cp --abi cp311 --abi abi3 --abi none torch==2.5.1
#   and write `name==version --hash=sha256:<download_info.archive_info.hashes.sha256>` per entry.
RUN printf '%s\n' \
      'filelock==4.3.1 --hash=sha256:79e43df8e9fe509cd83a3899a7c186c8077cbbe4d200a1ed3705c2f3bb6bc487' \
      'fsspec==2026.9.0 --hash=sha256:8dd6e646e99ea382bd85f97a45e6b526a442d79423a7dc673f1e2756d05fcb5f' \
      'jinja2==3.1.6 --hash=sha256:85ece4451f492d0c13c5dd7c13a64681a86afae63a5f347908daf103ce6d2f67' \
      'markupsafe==3.0.4 --hash=sha256:6da83a088f8ef93b2d483a8232a4dbf4d69d3d8496b568a03c56becac43e1808' \
      'mpmath==1.3.0 --hash=sha256:a0b2b9fe80bbcd81a6647ff13108738cfb482d481d826cc0e02f5b35e5c88d2c' \
      'networkx==3.6.1 --hash=sha256:d47fbf302e7d9cbbb9e2555a0d267983d2aa476bac30e90dfbe5669bd57f3762' \
      'nvidia-cublas-cu12==12.4.5.8 --hash=sha256:2fc8da60df463fdefa81e323eef2e36489e1c94335b5358bcb38360adf75ac9b' \
      'nvidia-cuda-cupti-cu12==12.4.127 --hash=sha256:9dec60f5ac126f7bb551c055072b69d85392b13311fcc1bcda2202d172df30fb' \
      'nvidia-cuda-nvrtc-cu12==12.4.127 --hash=sha256:a178759ebb095827bd30ef56598ec182b85547f1508941a3d560eb7ea1fbf338' \
      'nvidia-cuda-runtime-cu12==12.4.127 --hash=sha256:64403288fa2136ee8e467cdc9c9427e0434110899d07c779f25b5c068934faa5' \
      'nvidia-cudnn-cu12==9.1.0.70 --hash=sha256:165764f44ef8c61fcdfdfdbe769d687e06374059fbb388b6c89ecb0e28793a6f' \
      'nvidia-cufft-cu12==11.2.1.3 --hash=sha256:f083fc24912aa410be21fa16d157fed2055dab1cc4b6934a0e03cba69eb242b9' \
      'nvidia-curand-cu12==10.3.5.147 --hash=sha256:a88f583d4e0bb643c49743469964103aa59f7f708d862c3ddb0fc07f851e3b8b' \
      'nvidia-cusolver-cu12==11.6.1.9 --hash=sha256:19e33fa442bcfd085b3086c4ebf7e8debc07cfe01e11513cc6d332fd918ac260' \
      'nvidia-cusparse-cu12==12.3.1.170 --hash=sha256:ea4f11a2904e2a8dc4b1833cc1b5181cde564edd0d5cd33e3c168eff2d1863f1' \
      'nvidia-nccl-cu12==2.21.5 --hash=sha256:8579076d30a8c24988834445f8d633c697d42397e92ffc3f63fa26766d25e0a0' \
      'nvidia-nvjitlink-cu12==12.4.127 --hash=sha256:06b3b9b25bf3f8af351d664978ca26a16d2c5127dbd53c0497e28d1fb9611d57' \
      'nvidia-nvtx-cu12==12.4.127 --hash=sha256:781e950d9b9f60d8241ccea575b32f5105a5baf4c2351cab5256a24869f12a1a' \
      'sympy==1.13.1 --hash=sha256:db36cdc64bf61b9b24578b6f7bab1ecdd2452cf008f34faa33776680c26d66f8' \
      'torch==2.5.1 --hash=sha256:de5b7d6740c4b636ef4db92be922f0edc425b65ed78c5076c43c42d362a45457' \
      'triton==3.1.0 --hash=sha256:0f34f6e7885d1bf0eaaf7ba875a5f0ce6f3c13ba98f9503651c1e6dc6757ed5c' \
      'typing-extensions==4.16.0 --hash=sha256:481caa481374e813c1b176ada14e97f1f67a4539ce9cfeb3f350d78d6370c2e8' \
      > /tmp/torch-cu124-requirements.txt \
 && pip install --no-cache-dir --require-hashes --only-binary=:all: \
        -r /tmp/torch-cu124-requirements.txt \
 && rm /tmp/torch-cu124-requirements.txt

WORKDIR /build
COPY pyproject.toml README.md constraints.txt ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines

# The local project wheel is installed by path; its dependencies come from pyproject.toml.
# constraints.txt pins the venv's CPU torch (2.13.0); here that line is dropped so the `[torch]`
# extra (a range) finds the hashed CUDA 12.4 build above installed instead of replacing it.
# hadolint ignore=DL3013
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && wheel="$(find /wheels -name 'alphafactory-*.whl' | head -n 1)" \
 && grep -v '^torch==' constraints.txt > /tmp/gpu-constraints.txt \
 && pip install --no-cache-dir -c /tmp/gpu-constraints.txt "${wheel}[cloud,registry,xgboost,ngboost,torch,sources]" \
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
