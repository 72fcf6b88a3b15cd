# swift-ray: two commands on a fresh machine.
#   make demo   installs what is missing, builds, runs the example
#   make test   installs what is missing, builds, runs the whole suite
# Other targets: deps, build, bench, check-memory, protos, clean.

SWIFT ?= swift
# Debian packages the build needs: grpc++ and yaml-cpp for the shim (CInterop), protoc to regenerate
# the .pb.swift files, openssl for the TLS tests' certificates, chromium to render the dashboard's page.
APT_PACKAGES := libgrpc++-dev libgrpc-dev libyaml-cpp-dev protobuf-compiler pkg-config openssl chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ASAN_SCRATCH := .build-asan
# Ray 2.60's own Python CLI, which the suite runs against our head: a venv outside the checkout,
# made once (pip downloads ~100 MB) and reused by every later clone.
RAY_PYTHON_VENV ?= $(HOME)/.cache/swift-ray/ray-2.60.0-venv
export SWIFT_RAY_PYTHON_VENV := $(RAY_PYTHON_VENV)

.PHONY: all deps ray-venv build test demo bench check-memory protos clean

all: build

# Installs the Debian packages that are missing; a no-op when all are present.
deps:
	@command -v $(SWIFT) >/dev/null || { echo "error: no Swift toolchain on PATH (Swift 6.x is required)"; exit 1; }
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	else echo "deps: all Debian packages present"; fi

# Ray's CLI in its venv (Debian's python3-venv if this python lacks venv); a no-op once made.
ray-venv:
	@if [ -x $(RAY_PYTHON_VENV)/bin/ray ] && $(RAY_PYTHON_VENV)/bin/python -c 'import ray, aiohttp; assert ray.__version__ == "2.60.0"' 2>/dev/null; then \
	  echo "ray-venv: Ray 2.60.0 present in $(RAY_PYTHON_VENV)"; \
	else \
	  python3 -m venv --help >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv; }; \
	  rm -rf $(RAY_PYTHON_VENV) && mkdir -p $(dir $(RAY_PYTHON_VENV)) && \
	  python3 -m venv $(RAY_PYTHON_VENV) && \
	  $(RAY_PYTHON_VENV)/bin/pip install -q "ray[default]==2.60.0" && \
	  $(RAY_PYTHON_VENV)/bin/ray --version; \
	fi

build: deps
	$(SWIFT) build --build-tests

# The suites named *Starvation* keep every core and Swift's whole thread pool busy on purpose: they
# run after the rest, on their own and one at a time (each one's checks run on the test process's
# pool, which another one's spinning would hold up), so they slow no other test down.
SOLO := Starvation

test: build ray-venv
	GRPC_VERBOSITY=NONE $(SWIFT) test --skip-build --skip $(SOLO)
	GRPC_VERBOSITY=NONE $(SWIFT) test --skip-build --no-parallel --filter $(SOLO)
	scripts/user_package_test.sh .build/debug/ray

# The Ray example (examples/RayDemo) on an embedded local cluster, built in release like a user's program.
demo: deps
	$(SWIFT) build -c release --product ray-demo
	.build/release/ray-demo

# Ray's microbenchmark figures (and the RPC layer's), release builds; JSON in .build/bench.json.
# Built as a user's program is (a plain `swift build -c release`): the task path's generics are
# @inlinable, so they specialize without cross-module optimization, which Package.swift may not ask
# for (unsafeFlags). `make bench BENCH_FLAGS="-Xswiftc -cross-module-optimization"` builds with it.
BENCH_FLAGS ?=
bench: deps
	$(SWIFT) build -c release $(BENCH_FLAGS) --product ray-microbenchmark
	$(SWIFT) build -c release $(BENCH_FLAGS) --product ray
	$(SWIFT) build -c release $(BENCH_FLAGS) --product rpc-benchmark
	.build/release/ray-microbenchmark --json .build/bench.json
	.build/release/rpc-benchmark

# The test suite under AddressSanitizer with leak detection (toolchain-internal leaks suppressed in
# scripts/lsan.supp), in its own build folder.
# Swift's crash backtracer is off under ASan: seen hanging on an instrumented crashed process (its
# memory server itself faults), which left a test waiting for minutes; ASan prints the crash instead.
ASAN_ENV := ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/lsan.supp:print_suppressions=0 GRPC_VERBOSITY=NONE SWIFT_BACKTRACE=enable=no
check-memory: deps ray-venv
	$(ASAN_ENV) $(SWIFT) test --sanitize=address --scratch-path $(ASAN_SCRATCH) --disable-xctest --skip $(SOLO)
	$(ASAN_ENV) $(SWIFT) test --sanitize=address --scratch-path $(ASAN_SCRATCH) --disable-xctest --skip-build --no-parallel --filter $(SOLO)

protos: deps
	scripts/generate-protos.sh

clean:
	rm -rf .build $(ASAN_SCRATCH)
