# Thin wrapper around CMake. Everything real lives in CMakeLists.txt.
#
#   make deps      check/install Debian build+test dependencies (scripts/deps.sh)
#   make build-deps  only what building needs (make build / install use it)
#   make build     configure + build into build/ (-O2 -g)
#   make demo      build, then run examples/demo.sh (or build/examples/loop_demo)
#   make test      sanitized Debug build in build-test/ + ctest
#                  (CI=true adds -DTS_WERROR=ON; CTEST_ARGS="-R ioloop" filters)
#   make bench     build, then run every binary in build/bench/
#   make bench-compare  release build, cost tools + compare.sh against the peers
#                  (bench/run.sh; ROUNDS=3 QUICK=1 WORKLOADS='echo bulk ...')
#   make docs      doxygen API docs into build/docs/
#   make install   install into $(PREFIX) (default /usr/local; DESTDIR honoured)
#   make clean     remove build/ and build-test/

SHELL := /bin/bash

BUILD_DIR      ?= build
TEST_BUILD_DIR ?= build-test
PREFIX         ?= /usr/local
CMAKE          ?= cmake
CTEST          ?= ctest
JOBS           ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_JOBS     ?= 2
CTEST_ARGS     ?=
CMAKE_ARGS     ?=

ifeq ($(CI),true)
TS_WERROR_FLAG := -DTS_WERROR=ON
else
TS_WERROR_FLAG := -DTS_WERROR=OFF
endif

.PHONY: all help deps build-deps configure build demo test bench bench-compare docs install clean

all: build

help:
	@sed -n '3,15p' Makefile

deps:
	@bash scripts/deps.sh all

build-deps:
	@bash scripts/deps.sh build

configure: build-deps
	$(CMAKE) -S . -B $(BUILD_DIR) \
	    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g" \
	    -DTS_BUILD_TESTS=OFF \
	    $(CMAKE_ARGS)

build: configure
	$(CMAKE) --build $(BUILD_DIR) -j$(JOBS)

demo: deps build
	@if [ -f examples/demo.sh ]; then \
	    echo "==> examples/demo.sh"; \
	    TS_BUILD_DIR="$(CURDIR)/$(BUILD_DIR)" bash examples/demo.sh; \
	elif [ -x "$(BUILD_DIR)/examples/loop_demo" ]; then \
	    echo "==> $(BUILD_DIR)/examples/loop_demo"; \
	    "$(BUILD_DIR)/examples/loop_demo"; \
	else \
	    echo "demo: neither examples/demo.sh nor $(BUILD_DIR)/examples/loop_demo exists" >&2; \
	    exit 1; \
	fi

test: deps
	$(CMAKE) -S . -B $(TEST_BUILD_DIR) \
	    -DCMAKE_BUILD_TYPE=Debug \
	    -DTS_SANITIZE=ON \
	    $(TS_WERROR_FLAG) \
	    $(CMAKE_ARGS)
	$(CMAKE) --build $(TEST_BUILD_DIR) -j$(JOBS)
	$(CTEST) --test-dir $(TEST_BUILD_DIR) --output-on-failure -j$(CTEST_JOBS) $(CTEST_ARGS)

bench: build
	@set -e; found=0; \
	for b in $(BUILD_DIR)/bench/*; do \
	    if [ -f "$$b" ] && [ -x "$$b" ]; then \
	        found=1; \
	        echo "==> $$b"; \
	        "$$b"; \
	    fi; \
	done; \
	if [ $$found -eq 0 ]; then echo "bench: no benchmarks in $(BUILD_DIR)/bench/"; fi

bench-compare:
	bash bench/run.sh

docs: configure
	$(CMAKE) --build $(BUILD_DIR) --target docs

install: build
	$(CMAKE) --install $(BUILD_DIR) --prefix "$(PREFIX)"

clean:
	rm -rf $(BUILD_DIR) $(TEST_BUILD_DIR)
