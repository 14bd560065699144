# coapboard: `make run` (tbsim + a simulated device) and `make test` set everything up themselves;
# `make help` lists the targets (the "## " text after each target is its line there).
PY := .venv/bin/python
MP := .venv/bin/micropython
# chromium: the browser the page tests drive (Playwright, never a downloaded browser)
APT_PKGS := libcoap3-bin socat gcc-multilib chromium

.DEFAULT_GOAL := help
.PHONY: help setup venv sysdeps web twin run test lint bench clean flash deploy provision hwtest fuzz soak mutants

# $(call need,VAR,example): stop before anything runs, naming the variable the target lacks
need = $(if $(strip $($(1))),,$(error make $@ needs $(1)=$(2)))

help: ## this list
	@echo "make TARGET [VAR=value ...]; the targets:"
	@sed -n 's/^\([a-z]*\):.*## \(.*\)/  \1|\2/p' $(MAKEFILE_LIST) | awk -F'|' '{printf "%-12s %s\n", $$1, $$2}'

setup: venv sysdeps web ## the .venv, the Debian packages and the page's uPlot (run and test do it)

venv: .venv/.stamp ## .venv with the pinned packages of requirements.txt
.venv/.stamp: requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install -q -r requirements.txt
	touch $@

# Debian packages the tests use as independent CoAP peers; installed only when missing.
sysdeps: ## the Debian packages in APT_PKGS, when missing
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		(apt-get install -y -q $$missing || (apt-get update -q && apt-get install -y -q $$missing)) >/dev/null; \
	fi

# tbsim's page: uPlot from the npm registry, pinned by tools/tbsim/web/package-lock.json
# (served by tbsim from build/web; no build step). npm comes with Node.js, else from Debian.
web: build/web/.stamp ## uPlot for tbsim's page, from the npm registry, into build/web
build/web/.stamp: tools/tbsim/web/package.json tools/tbsim/web/package-lock.json
	@command -v npm >/dev/null || $(MAKE) --no-print-directory sysdeps APT_PKGS=npm
	@mkdir -p build/web
	@cp tools/tbsim/web/package.json tools/tbsim/web/package-lock.json build/web/
	@cd build/web && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

# The ESP32 twin: MicroPython's unix port as a 32-bit binary, for the heap gates (tools/twin.py).
# Source: MICROPYTHON_SRC=<archive>, else the vendored copy beside the repo, else micropython.org.
twin: setup ## build the ESP32 twin (32-bit unix port) into build/twin
	$(PY) -m tools.twin

SECONDS ?= 0
COAP_PORT ?= 5683
HTTP_PORT ?= 8080
DATA ?= data
# SLEEP=1: the device deep-sleeps between wakes (docs/sleep.md)
SLEEP ?=
run: setup ## tbsim and a simulated device; Ctrl-C stops [SECONDS= COAP_PORT= HTTP_PORT= DATA= SLEEP=1]
	@$(PY) -m tools.run --seconds $(SECONDS) --coap-port $(COAP_PORT) --http-port $(HTTP_PORT) --data $(DATA) $(if $(SLEEP),--sleep)

test: setup lint twin ## every test (about 12 minutes)
	$(PY) -m pytest -q tests

# A real board (docs/blank-board.md): PORT=/dev/ttyUSB0 and
#   flash:     FIRMWARE=ESP32_GENERIC-OTA-<date>-<version>.bin [DRY_RUN=1]
#   deploy:    [CONFIG=my-device.json]
#   provision: NAME= TOKEN= (or KEY= SECRET=) SSID= PASSWORD= SERVER=host[:port] [TEMPLATE=]
#              or CSV=boards.csv ROW=<name>, or CSV=boards.csv BATCH=1 (PORT= or a port column)
PORT_HINT := <the board's serial port, e.g. /dev/ttyUSB0>
flash: venv ## erase a board, write MicroPython: PORT= FIRMWARE= [DRY_RUN=1]
	$(call need,PORT,$(PORT_HINT))
	$(call need,FIRMWARE,<the OTA image: ESP32_GENERIC-OTA-<date>-<version>.bin>)
	@$(PY) -m tools.flash --port "$(PORT)" "$(FIRMWARE)" $(if $(DRY_RUN),--dry-run)

deploy: venv ## copy the firmware (and CONFIG=, checked first) to a board: PORT= [CONFIG=]
	$(call need,PORT,$(PORT_HINT))
	@$(PY) -m tools.deploy --port "$(PORT)" $(if $(CONFIG),--config "$(CONFIG)")

provision: venv ## config, firmware and a first report: PORT= NAME= TOKEN= SSID= PASSWORD= SERVER=
	$(if $(CSV),,$(call need,PORT,$(PORT_HINT)))
	$(if $(CSV),$(if $(ROW)$(BATCH),,$(call need,ROW,<a device name in $(CSV)> (or BATCH=1))))
	$(if $(CSV),,$(call need,SERVER,<the ThingsBoard host or host:port>))
	$(if $(CSV),,$(call need,SSID,<the Wi-Fi network name>))
	$(if $(CSV)$(KEY),,$(call need,TOKEN,<the device's access token> (or KEY= SECRET=)))
	$(if $(KEY),$(call need,SECRET,<the provision secret of the device profile>))
	@$(PY) -m tools.provision --port "$(PORT)" $(if $(CSV),--csv "$(CSV)") \
		$(if $(ROW),--row "$(ROW)") $(if $(BATCH),--batch) $(if $(TEMPLATE),--template "$(TEMPLATE)") \
		$(if $(NAME),--name "$(NAME)") $(if $(TOKEN),--token "$(TOKEN)") \
		$(if $(KEY),--provision-key "$(KEY)") $(if $(SECRET),--provision-secret "$(SECRET)") \
		$(if $(SSID),--ssid "$(SSID)") $(if $(PASSWORD),--password "$(PASSWORD)") \
		$(if $(SERVER),--server "$(SERVER)")

# A board against tbsim on this host's LAN address: boot, telemetry, GPIO, a reset, a rolled
# back app and firmware update (FIRMWARE=, the image make flash takes), as a pass/fail table
# (tools/hwtest.py): PORT= SSID= PASSWORD= FIRMWARE= [PIN=26] [HOST=]
hwtest: venv ## check a real board against tbsim here: PORT= SSID= PASSWORD= FIRMWARE= [PIN=] [HOST=]
	$(call need,PORT,$(PORT_HINT))
	$(call need,SSID,<the Wi-Fi network name>)
	$(call need,FIRMWARE,<the OTA image the board runs: ESP32_GENERIC-OTA-<date>-<version>.bin>)
	@$(PY) -m tools.hwtest --port "$(PORT)" --ssid "$(SSID)" --password "$(PASSWORD)" \
		--firmware "$(FIRMWARE)" $(if $(PIN),--pin $(PIN)) $(if $(HOST),--host $(HOST))

# The long fuzz run (well over 1,000,000 inputs, about 15 minutes): the codec under CPython,
# and server input into the device stack on the unix port (see tests/fuzz).
FUZZ_SCALE ?= 20
FUZZ_AMP ?= 500
fuzz: setup ## the long fuzz run, about 15 minutes [FUZZ_SCALE= FUZZ_AMP=]
	@COAP_FUZZ_EXAMPLES=5000 FUZZ_SCALE=$(FUZZ_SCALE) FUZZ_AMP=$(FUZZ_AMP) \
		$(PY) -m pytest -q -p no:cacheprovider tests/codec/test_fuzz.py tests/fuzz

# One-line mutants of the firmware, lib/ and tbsim, each run against the tests that must catch
# it (tests/mutants.py); JOBS mutants at a time. Not part of `make test`.
JOBS ?= 2
mutants: setup ## the mutant list against the tests that must catch each, about 2 minutes [JOBS=2]
	$(PY) tests/mutants.py -j $(JOBS)

# The firmware against tbsim with loss, duplication, reordering, restarts and outages.
CYCLES ?= 600
soak: setup ## the firmware against tbsim under faults [CYCLES=600]
	$(PY) -m tools.soak --cycles $(CYCLES)

bench: setup twin ## the benchmarks (docs/benchmarks.md)
	$(PY) bench/run_coap.py 5000
	$(PY) bench/payload_size.py
	$(PY) bench/fw_run.py
	$(PY) bench/ota_run.py
	$(PY) bench/twin_heap.py
	$(PY) bench/page_latency.py
	$(PY) bench/uplink.py
	$(PY) bench/wake.py

lint: venv ## ruff check and format check
	.venv/bin/ruff check -q . && .venv/bin/ruff format --check -q .

clean: ## remove .venv, build and caches
	rm -rf .venv .pytest_cache build
