# The front door. `make` builds into build/, `make test` runs every test, `make demo`
# shows the main job. Missing Debian packages (and, for tests, the npm test peer) are
# installed on first use by scripts/install-deps.sh; apt-get needs root or sudo.

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps test-deps build san test demo fuzz bench clean install

all: build

deps:
	@bash scripts/install-deps.sh build

test-deps:
	@bash scripts/install-deps.sh test

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build build -j $(JOBS)

# clang, AddressSanitizer + UndefinedBehaviorSanitizer, libFuzzer targets
san: test-deps
	@CC=clang cmake -S . -B build-san -DCMAKE_BUILD_TYPE=Debug -DIROH_SANITIZE=ON -DIROH_FUZZ=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-san -j $(JOBS)

# both suites run even when the first fails; the status is a failure if either failed
test: test-deps build san
	@echo "== sanitizer build (clang, ASan+UBSan): unit tests and fuzz corpora =="
	@s=0; (cd build-san && ctest --output-on-failure -j $(JOBS)) || s=1; \
	echo "== main build (gcc): unit, command-line and interop tests =="; \
	(cd build && ctest --output-on-failure -j $(JOBS)) || s=$$((s + 2)); \
	case $$s in 1) echo "== FAILED: the sanitizer suite";; 2) echo "== FAILED: the main suite";; \
	3) echo "== FAILED: both suites";; esac; exit $$s

demo: build
	@bash scripts/demo.sh build/iroh-c

bench: build
	@cmake --build build --target benches -j $(JOBS)
	@for b in build/bench/bench_*; do echo "== $$b"; $$b; done
	@echo "== bench/pipe.sh (the dumb pipe, 512 MiB over loopback)"; bash bench/pipe.sh build/iroh-c 512 3
	@echo "== bench/tunnel.sh (one TCP connection through connect-tcp / listen-tcp against the pipe, 512 MiB)"; bash bench/tunnel.sh build/iroh-c 512 3
	@echo "== bench/connect_by_id.sh (connect by EndpointId through a local dns-server, against a ticket)"; bash bench/connect_by_id.sh build/iroh-c 10
	@echo "== bench/holepunch.sh (relay to direct through two NATs in network namespaces; needs root)"; bash bench/holepunch.sh build/iroh-c 7 2

# every libFuzzer target for FUZZ_SECONDS (default 60) each, one at a time, under nice;
# prints the executions per target and the total (scripts/fuzz.sh says more)
fuzz: san
	@bash scripts/fuzz.sh

install: build
	@cmake --install build

clean:
	rm -rf build build-san
