# Compiled pipeline specs per environment (pipelines/compiled/<env>.yaml, golden files).
# Included by the top-level Makefile, which defines VENV and PY.

.PHONY: compile check-compiled

compile: $(INSTALLED) ## Compile the pipeline for every environment into pipelines/compiled/
	$(VENV)/bin/alphafactory compile --all

check-compiled: $(INSTALLED) ## Fail when a compiled spec differs from a fresh compile (stale)
	$(VENV)/bin/alphafactory compile --check
