# coapboard: `make run` (tbsim + a simulated device) and `make test` set everything up themselves.
PY := .venv/bin/python
MP := .venv/bin/micropython
APT_PKGS := libcoap3-bin socat

.PHONY: setup venv sysdeps run test lint bench clean

setup: venv sysdeps

venv: .venv/.stamp
.venv/.stamp: requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install -q -r requirements.txt
	touch $@

# Debian packages the tests use as independent CoAP peers; installed only when missing.
sysdeps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		(apt-get install -y -q $$missing || (apt-get update -q && apt-get install -y -q $$missing)) >/dev/null; \
	fi

SECONDS ?= 0
run: setup
	$(PY) -m tools.run --seconds $(SECONDS)

test: setup
	.venv/bin/ruff check -q . && .venv/bin/ruff format --check -q .
	$(PY) -m pytest -q tests

bench: venv
	$(PY) bench/run_coap.py 5000
	$(PY) bench/fw_run.py

lint: venv
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

clean:
	rm -rf .venv .pytest_cache build
