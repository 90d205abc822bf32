# Benchmarks (bench/). Included by the top-level Makefile, which defines VENV and PY.

BENCH_ARGS ?=

.PHONY: bench bench-smoke

bench: ## Variant-training throughput: process-per-variant vs shard executor (bench/results/)
	$(PY) bench/variant_throughput.py $(BENCH_ARGS)

bench-smoke: ## The throughput benchmark on a tiny data set (seconds), results in /tmp
	$(PY) bench/variant_throughput.py --bars 2000 --features 10 --symbols BTC --windows 5 \
	  --horizons 6,24 --num-rounds 20 --out /tmp/alphafactory-bench-smoke
