# The two commands of the README: `make demo` and `make test`.
# Every ROS 2 process started from here stays on loopback.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
# Fast DDS over shared memory only, with segments large enough for images (see the file).
export FASTDDS_DEFAULT_PROFILES_FILE ?= $(CURDIR)/config/fastdds_shm.xml

VENV := .venv
PY := $(VENV)/bin/python

.PHONY: venv test lint demo clean-venv

venv:
	@tools/bootstrap.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: venv lint
	$(PY) -m pytest -q test

demo: venv
	@ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-$$(( ($$$$ % 90) + 10 ))} $(VENV)/bin/stereo-hand-mesh demo

clean-venv:
	rm -rf $(VENV)
