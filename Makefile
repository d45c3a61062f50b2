# swift-lbpool: `make test` runs every test, `make demo` shows the round-robin example.
# Tests run one at a time: the integration suites put real load on two cores.
SHELL := /bin/bash
APT_PACKAGES := libc-ares-dev pkg-config nginx-light dnsmasq-base nghttp2-client iproute2 openssl procps nodejs
SWIFT ?= swift

.PHONY: all build deps test unit integration demo docs bench clean

all: build

# Installs the Debian packages the build and the tests need. As root it installs what is
# missing; otherwise it prints the apt line and fails.
deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	  else \
	    echo "missing packages; run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

build: deps
	$(SWIFT) build

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel

unit: deps
	$(SWIFT) test --filter LBPoolTests

integration: deps
	$(SWIFT) test --filter LBPoolIntegrationTests

demo: deps
	$(SWIFT) build --product RoundRobinClient
	bash scripts/demo.sh "$$($(SWIFT) build --show-bin-path)/RoundRobinClient"

# h2load, the pool and AsyncHTTPClient against the same nginx backends in one run (h2c, TLS,
# HTTP/1.1), the 1000-address scale case and the micro-benchmarks; writes Benchmarks/RESULTS.md.
bench: deps
	$(SWIFT) build -c release --product RoundRobinClient
	$(SWIFT) build -c release --package-path Benchmarks --product AHCLoad
	$(SWIFT) build -c release --package-path Benchmarks --product ScaleProbe
	bash scripts/bench.sh "$$($(SWIFT) build -c release --show-bin-path)/RoundRobinClient" \
	  "$$($(SWIFT) build -c release --package-path Benchmarks --show-bin-path)"

# Checks the DocC catalog against the public API (no warnings allowed) and writes it to .build/docs.
docs: build
	$(SWIFT) package dump-symbol-graph >/dev/null
	rm -rf .build/docs-symbols && mkdir -p .build/docs-symbols
	cp "$$($(SWIFT) build --show-bin-path)/../symbolgraph/LBPool.symbols.json" .build/docs-symbols/
	docc convert Sources/LBPool/LBPool.docc --additional-symbol-graph-dir .build/docs-symbols \
	  --fallback-display-name LBPool --fallback-bundle-identifier org.swift-lbpool --output-path .build/docs --warnings-as-errors

clean:
	rm -rf .build Benchmarks/.build
