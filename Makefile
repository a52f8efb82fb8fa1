# `make run` and `make test` each install everything they need first (see README).
PYTHON ?= python3
export DVC_NO_ANALYTICS := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install browser run test test-fast generated

install:
	$(PYTHON) -m pip install --quiet -e ".[test]"

# Debian's chromium + chromedriver for the report's browser test. Without root or apt-get the test
# skips itself with a reason (never in CI, where .ci/run runs as root).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "note: chromium not installed; the browser test will be skipped"; fi

run: install
	snakemake --cores 1 --resources gpu=1

test: install browser
	$(PYTHON) -m pytest

# the fast lane: everything but the tests marked slow (pipelines, training runs); see README
test-fast: install browser
	$(PYTHON) -m pytest -m "not slow"

# dvc.yaml and scripts/<stage>.py are generated from the stage table in src/metahpo/pipeline.py
generated:
	$(PYTHON) -m metahpo.pipeline --write
