# coapboard: `make run` (tbsim + a simulated device) and `make test` set everything up themselves.
PY := .venv/bin/python
MP := .venv/bin/micropython
APT_PKGS := libcoap3-bin socat gcc-multilib

.PHONY: setup venv sysdeps twin run test lint bench clean flash deploy provision hwtest fuzz soak

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

# The ESP32 twin: MicroPython's unix port as a 32-bit binary, for the heap gates (tools/twin.py).
# Source: MICROPYTHON_SRC=<archive>, else the vendored copy beside the repo, else micropython.org.
twin: setup
	$(PY) -m tools.twin

SECONDS ?= 0
run: setup
	$(PY) -m tools.run --seconds $(SECONDS)

test: setup lint twin
	$(PY) -m pytest -q tests

# A real board (README "From a blank board to telemetry"): PORT=/dev/ttyUSB0 and
#   flash:     FIRMWARE=ESP32_GENERIC-OTA-<date>-<version>.bin [DRY_RUN=1]
#   deploy:    [CONFIG=my-device.json]
#   provision: NAME= TOKEN= (or KEY= SECRET=) SSID= PASSWORD= SERVER=host[:port] [TEMPLATE=]
#              or CSV=boards.csv ROW=<name>, or CSV=boards.csv BATCH=1
flash: venv
	$(PY) -m tools.flash --port "$(PORT)" "$(FIRMWARE)" $(if $(DRY_RUN),--dry-run)

deploy: venv
	$(PY) -m tools.deploy --port "$(PORT)" $(if $(CONFIG),--config "$(CONFIG)")

provision: venv
	$(PY) -m tools.provision --port "$(PORT)" $(if $(CSV),--csv "$(CSV)") \
		$(if $(ROW),--row "$(ROW)") $(if $(BATCH),--batch) $(if $(TEMPLATE),--template "$(TEMPLATE)") \
		$(if $(NAME),--name "$(NAME)") $(if $(TOKEN),--token "$(TOKEN)") \
		$(if $(KEY),--provision-key "$(KEY)") $(if $(SECRET),--provision-secret "$(SECRET)") \
		$(if $(SSID),--ssid "$(SSID)") $(if $(PASSWORD),--password "$(PASSWORD)") \
		$(if $(SERVER),--server "$(SERVER)")

# A board against tbsim on this host's LAN address: boot, telemetry, GPIO, a reset, a rolled
# back update, as a pass/fail table (tools/hwtest.py): PORT= SSID= PASSWORD= [PIN=26] [HOST=]
hwtest: venv
	$(PY) -m tools.hwtest --port "$(PORT)" --ssid "$(SSID)" --password "$(PASSWORD)" \
		$(if $(PIN),--pin $(PIN)) $(if $(HOST),--host $(HOST))

# The long fuzz run (well over 1,000,000 inputs, about 15 minutes): the codec under CPython,
# and server input into the device stack on the unix port (see tests/fuzz).
FUZZ_SCALE ?= 20
FUZZ_AMP ?= 500
fuzz: setup
	COAP_FUZZ_EXAMPLES=5000 FUZZ_SCALE=$(FUZZ_SCALE) FUZZ_AMP=$(FUZZ_AMP) \
		$(PY) -m pytest -q -p no:cacheprovider tests/codec/test_fuzz.py tests/fuzz

# The firmware against tbsim with loss, duplication, reordering, restarts and outages.
CYCLES ?= 600
soak: setup
	$(PY) -m tools.soak --cycles $(CYCLES)

bench: venv twin
	$(PY) bench/run_coap.py 5000
	$(PY) bench/payload_size.py
	$(PY) bench/fw_run.py
	$(PY) bench/ota_run.py
	$(PY) bench/twin_heap.py

lint: venv
	.venv/bin/ruff check -q . && .venv/bin/ruff format --check -q .

clean:
	rm -rf .venv .pytest_cache build
