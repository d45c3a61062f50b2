# swift-lbpool: `make test` runs every test, `make demo` shows the round-robin example.
# Tests run one at a time: the integration suites put real load on two cores.
SHELL := /bin/bash
# The other HTTP/2 servers of InteropTests: Apache httpd with mod_http2 and mod_lua (apache2-bin:
# the server and its modules, without the service that the apache2 package starts), h2o (with
# mruby). Node's http2 module comes with `node` (Debian's nodejs, installed only if no node is
# on PATH), hypercorn from PyPI for the python3 on PATH (python3-pip only if it has no pip).
INTEROP_APT_PACKAGES := apache2-bin h2o
INTEROP_PIP_PACKAGE := hypercorn>=0.18
APT_PACKAGES := libc-ares-dev pkg-config nginx-light dnsmasq-base nghttp2-client iproute2 openssl procps \
  $(INTEROP_APT_PACKAGES)
SWIFT ?= swift

.PHONY: all build deps chart-deps test unit integration demo docs bench clean fuzz fuzz-build fuzz-merge fuzz-seeds format format-check lint

all: build

# Installs the Debian packages the build and the tests need. As root it installs what is
# missing; otherwise it prints the apt line and fails.
deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	python3 -m pip --version >/dev/null 2>&1 || missing="$$missing python3-pip"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	  else \
	    echo "missing packages; run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi
	@# hypercorn, unless the python3 on PATH has it at the version the tests were written for.
	@# A Debian python3 refuses pip installs outside a venv (PEP 668) unless told otherwise.
	@if ! python3 -c 'import importlib.metadata as m, sys; sys.exit(tuple(map(int, m.version("hypercorn").split(".")[:2])) < (0, 18))' 2>/dev/null; then \
	  echo "installing $(INTEROP_PIP_PACKAGE) from PyPI"; \
	  python3 -m pip install --quiet --disable-pip-version-check "$(INTEROP_PIP_PACKAGE)" 2>/dev/null || \
	    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$(INTEROP_PIP_PACKAGE)" || exit 1; \
	fi

build: deps
	$(SWIFT) build

test: deps lint
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel

# The checks that need no build: layers depend one way (scripts/check-layers.py), and the code is
# formatted as .swift-format says (swift-format comes with the Swift toolchain, 6.0 and later).
FORMAT_PATHS := Sources Tests Examples Fuzz Package.swift
lint: format-check
	python3 scripts/check-layers.py

format:
	$(SWIFT) format format --configuration .swift-format -i -r $(FORMAT_PATHS)

format-check:
	@$(SWIFT) format --version >/dev/null 2>&1 || { echo "swift format is missing: use a Swift 6 toolchain, which includes swift-format"; exit 1; }
	@$(SWIFT) format lint --strict --configuration .swift-format -r $(FORMAT_PATHS) || { echo "not formatted: run make format"; exit 1; }

unit: deps
	$(SWIFT) test --filter LBPoolTests

integration: deps
	$(SWIFT) test --filter LBPoolIntegrationTests

# The charts of make demo and make bench need gnuplot (make test does not install it).
CHART_APT_PACKAGES := gnuplot-nox

chart-deps: deps
	@dpkg-query -W -f='$${Status}' $(CHART_APT_PACKAGES) 2>/dev/null | grep -q "install ok installed" || { \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing: $(CHART_APT_PACKAGES)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(CHART_APT_PACKAGES) >/dev/null || exit 1; \
	  else \
	    echo "missing packages; run: sudo apt-get install -y $(CHART_APT_PACKAGES)"; exit 1; \
	  fi; }

demo: chart-deps
	$(SWIFT) build --product RoundRobinClient
	bash scripts/demo.sh "$$($(SWIFT) build --show-bin-path)/RoundRobinClient"

# h2load, the pool and AsyncHTTPClient against the same nginx backends in one run (h2c, TLS,
# HTTP/1.1), the 1000-address scale case and the micro-benchmarks; writes Benchmarks/RESULTS.md.
bench: chart-deps
	@# The nested package plans its build of this one anew: a cached plan misses new files.
	rm -f Benchmarks/.build/release.yaml
	@# The baseline of tracing's cost with no tracer: the example client with tracing compiled out.
	$(SWIFT) build -c release --product RoundRobinClient --traits TracingCompiledOut
	cp "$$($(SWIFT) build -c release --show-bin-path)/RoundRobinClient" .build/RoundRobinClient-untraced
	$(SWIFT) build -c release --product RoundRobinClient
	$(SWIFT) build -c release --package-path Benchmarks --product AHCLoad
	$(SWIFT) build -c release --package-path Benchmarks --product ScaleProbe
	bash scripts/bench.sh "$$($(SWIFT) build -c release --show-bin-path)/RoundRobinClient" \
	  "$$($(SWIFT) build -c release --package-path Benchmarks --show-bin-path)" .build/RoundRobinClient-untraced

# Checks the DocC catalog against the public API (no warnings allowed) and writes it to .build/docs.
docs: build
	$(SWIFT) package dump-symbol-graph >/dev/null
	rm -rf .build/docs-symbols && mkdir -p .build/docs-symbols
	cp "$$($(SWIFT) build --show-bin-path)/../symbolgraph/LBPool.symbols.json" .build/docs-symbols/
	docc convert Sources/LBPool/LBPool.docc --additional-symbol-graph-dir .build/docs-symbols \
	  --fallback-display-name LBPool --fallback-bundle-identifier org.swift-lbpool --output-path .build/docs --warnings-as-errors

# Fuzzing with libFuzzer (see Fuzz/README.md). `make fuzz` builds the fuzz targets with
# libFuzzer and AddressSanitizer and runs each for FUZZ_SECONDS, starting from the committed
# corpus in Fuzz/Corpus/<target>; new inputs go to the scratch corpus in $(FUZZ_SCRATCH), never
# into the committed one (`make fuzz-merge` minimises them into it, deliberately). A crash, leak,
# timeout or out-of-memory input is written to Fuzz/Artifacts/<target>/ (ignored by git), the
# other targets still run, and make fails.
FUZZ_TARGETS := FrameParser HPACKDecoder Connection
FUZZ_SECONDS ?= 60
FUZZ_MAX_LEN ?= 8192
FUZZ_RSS_LIMIT_MB ?= 2048
FUZZ_TIMEOUT ?= 10
FUZZ_SCRATCH ?= .build-fuzz
FUZZ_FLAGS ?=
# `--sanitize fuzzer` makes SwiftPM link libFuzzer's `main` rather than the executable's own.
# AddressSanitizer is added by hand, not with `--sanitize address`: SwiftPM would pass swiftc two
# -sanitize= flags, of which swiftc keeps the last, in an order that changes from run to run (so
# Swift code got either coverage or AddressSanitizer, and each change rebuilt everything).
# swiftc's last -sanitize= is this one, with both.
FUZZ_SANITIZE := --sanitize fuzzer -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=address -Xcxx -fsanitize=address
FUZZ_BUILD := LBPOOL_FUZZ=1 $(SWIFT) build --scratch-path $(FUZZ_SCRATCH) $(FUZZ_SANITIZE)
FUZZ_BIN = $$($(FUZZ_BUILD) --show-bin-path)

fuzz-build: deps
	for target in $(FUZZ_TARGETS); do $(FUZZ_BUILD) --product $${target}Fuzzer || exit 1; done

fuzz: fuzz-build
	@bin="$(FUZZ_BIN)"; failed=""; \
	for target in $(FUZZ_TARGETS); do \
	  mkdir -p "$(FUZZ_SCRATCH)/corpus/$$target" "Fuzz/Artifacts/$$target"; \
	  echo "== $$target: $(FUZZ_SECONDS) s"; \
	  "$$bin/$${target}Fuzzer" -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAX_LEN) \
	    -rss_limit_mb=$(FUZZ_RSS_LIMIT_MB) -timeout=$(FUZZ_TIMEOUT) -print_final_stats=1 \
	    -artifact_prefix="Fuzz/Artifacts/$$target/" $(FUZZ_FLAGS) \
	    "$(FUZZ_SCRATCH)/corpus/$$target" "Fuzz/Corpus/$$target" || failed="$$failed $$target"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzzing found crashes in:$$failed (inputs in Fuzz/Artifacts/)"; exit 1; fi

# Minimises the scratch corpus of `make fuzz` into the committed one: keeps what is there and
# adds the smallest set of inputs that reaches the coverage it lacks (libFuzzer's -merge=1 with
# set cover, which keeps the committed corpus far smaller).
fuzz-merge: fuzz-build
	@bin="$(FUZZ_BIN)"; \
	for target in $(FUZZ_TARGETS); do \
	  mkdir -p "$(FUZZ_SCRATCH)/corpus/$$target"; \
	  "$$bin/$${target}Fuzzer" -set_cover_merge=1 -max_len=$(FUZZ_MAX_LEN) -rss_limit_mb=$(FUZZ_RSS_LIMIT_MB) \
	    "Fuzz/Corpus/$$target" "$(FUZZ_SCRATCH)/corpus/$$target" || exit 1; \
	done

# Writes the seed inputs (Fuzz/Entries/FuzzSeeds.swift) to $(FUZZ_SCRATCH)/seeds/<target>/.
fuzz-seeds: deps
	LBPOOL_FUZZ=1 $(SWIFT) run FuzzSeedWriter "$(FUZZ_SCRATCH)/seeds"

clean:
	rm -rf .build Benchmarks/.build $(FUZZ_SCRATCH)
