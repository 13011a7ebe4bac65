# Thin wrapper around CMake. Everything real lives in CMakeLists.txt.
#
#   make deps      check/install Debian build+test dependencies (scripts/deps.sh)
#   make build-deps  only what building needs (make build / install use it)
#   make build     configure + build into build/ (-O2 -g)
#   make demo      build, then run examples/demo.sh (or build/examples/loop_demo)
#   make test      sanitized Debug build in build-test/ + ctest
#                  (CI=true adds -DTS_WERROR=ON; CTEST_ARGS="-R ioloop" filters)
#   make fuzz      clang libFuzzer build in build-fuzz/ (TS_FUZZ), then every
#                  target for FUZZ_SECONDS each (default 60; FUZZ_TARGETS=...)
#   make valgrind  the unit suite under valgrind memcheck (build-valgrind/)
#   make tsan      ThreadSanitizer build (build-tsan/), the tests that use threads
#   make soak      release build, then tests/soak.sh (SOAK_SECONDS, default 60)
#   make bench     build, then run every binary in build/bench/
#   make bench-compare  release build, cost tools + compare.sh against the peers
#                  (bench/run.sh; ROUNDS=3 QUICK=1 WORKLOADS='echo bulk ...')
#   make docs      doxygen API docs and man pages into build/docs/
#   make install   install into $(PREFIX) (default /usr/local; DESTDIR honoured)
#   make package   Debian packages into build/: libtstream0, libtstream-dev,
#                  libtstream-tools (built for /usr in build-package/)
#   make clean     remove build/, build-test/, build-package/ and the
#                  fuzz, valgrind and tsan build directories

SHELL := /bin/bash

BUILD_DIR      ?= build
TEST_BUILD_DIR ?= build-test
PREFIX         ?= /usr/local
PKG_BUILD_DIR  ?= build-package
CMAKE          ?= cmake
CTEST          ?= ctest
JOBS           ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_JOBS     ?= 2
CTEST_ARGS     ?=
CMAKE_ARGS     ?=
FUZZ_BUILD_DIR ?= build-fuzz
FUZZ_SECONDS   ?= 60

ifeq ($(CI),true)
TS_WERROR_FLAG := -DTS_WERROR=ON
else
TS_WERROR_FLAG := -DTS_WERROR=OFF
endif

.PHONY: all help deps build-deps configure build demo test bench bench-compare docs install package clean fuzz valgrind tsan soak

all: build

help:
	@sed -n '3,23p' Makefile

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

fuzz: deps
	CC=clang $(CMAKE) -S . -B $(FUZZ_BUILD_DIR) \
	    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" \
	    -DTS_FUZZ=ON -DTS_BUILD_TESTS=OFF -DTS_BUILD_EXAMPLES=OFF -DTS_BUILD_BENCH=OFF \
	    $(CMAKE_ARGS)
	$(CMAKE) --build $(FUZZ_BUILD_DIR) -j$(JOBS)
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh $(FUZZ_BUILD_DIR)

valgrind: deps
	JOBS=$(JOBS) bash .ci/reliability.sh valgrind

tsan: deps
	JOBS=$(JOBS) bash .ci/reliability.sh tsan

soak: deps
	JOBS=$(JOBS) SOAK_SECONDS=$(or $(SOAK_SECONDS),60) bash .ci/reliability.sh soak

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

# Configured for /usr so that GNUInstallDirs picks the multiarch libdir; the
# man pages come from doxygen, so it must be installed (apt-get install doxygen).
package: build-deps
	@command -v doxygen >/dev/null || { echo "package: doxygen is needed for the man pages (apt-get install doxygen)" >&2; exit 1; }
	$(CMAKE) -S . -B $(PKG_BUILD_DIR) \
	    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g" \
	    -DCMAKE_INSTALL_PREFIX=/usr \
	    -DTS_BUILD_TESTS=OFF -DTS_BUILD_BENCH=OFF \
	    -DTS_BUILD_EXAMPLES=ON -DTS_INSTALL_EXAMPLES=ON \
	    $(CMAKE_ARGS)
	$(CMAKE) --build $(PKG_BUILD_DIR) -j$(JOBS)
	$(CMAKE) --build $(PKG_BUILD_DIR) --target docs
	mkdir -p $(BUILD_DIR) && rm -f $(BUILD_DIR)/libtstream*.deb
	cd $(PKG_BUILD_DIR) && cpack -G DEB -B "$(CURDIR)/$(BUILD_DIR)/cpack"
	mv -f $(BUILD_DIR)/cpack/*.deb $(BUILD_DIR)/
	@ls -1 $(BUILD_DIR)/*.deb

clean:
	rm -rf $(BUILD_DIR) $(TEST_BUILD_DIR) $(PKG_BUILD_DIR) build-fuzz build-valgrind build-tsan
