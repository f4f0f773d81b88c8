# ustack — build, test, fuzz, bench, demo.
GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 20s
BIN      := bin/ustack

.PHONY: build test fuzz bench demo deps vet clean

build:
	$(GO) build -o $(BIN) ./cmd/ustack

vet:
	$(GO) vet $(PKGS)

# Everything: vet, then every test (unit, fuzz seed corpora, namespace/TUN
# integration tests — those skip without root unless USTACK_REQUIRE_NETNS=1).
# The integration packages run after the others, not beside them: the SYN
# flood test measures a connection rate on a 2-core machine, and the unit
# tests' CPU would be part of what it measured.
test: vet
	@set -e; unit=$$($(GO) list $(PKGS) | grep -v '/integration' || true); \
	integ=$$($(GO) list $(PKGS) | grep '/integration' || true); \
	if [ -n "$$unit" ]; then echo "go test -count=1 -timeout 3m <unit packages>"; $(GO) test -count=1 -timeout 3m $$unit; fi; \
	if [ -n "$$integ" ]; then echo "go test -count=1 -timeout 8m <integration packages>"; $(GO) test -count=1 -timeout 8m $$integ; fi

# Run every fuzz target in the module for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# Go benchmarks (allocation counts included), then `ustack bench`: ustack
# against gVisor's netstack and the kernel, each in a private namespace
# (needs root; skipped otherwise). BENCHFLAGS go to ustack bench.
BENCHFLAGS ?=
bench: build
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	@if [ "$$(id -u)" -ne 0 ]; then echo "skipping ustack bench: it needs root or CAP_NET_ADMIN (namespaces and TUN devices)"; \
	else ./$(BIN) bench $(BENCHFLAGS); fi

# Tools the demo and the namespace tests drive from the kernel side.
DEPS_BIN := ip:iproute2 ping:iputils-ping curl:curl
deps:
	@missing=""; for d in $(DEPS_BIN); do command -v $${d%%:*} >/dev/null 2>&1 || missing="$$missing $${d#*:}"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -ne 0 ]; then echo "need$$missing installed (run as root to install them)"; exit 1; fi; \
		echo "installing$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The main job end to end: ustack serve in a private network namespace,
# exercised from the kernel side over IPv4 and IPv6.
demo:
	@if [ "$$(id -u)" -ne 0 ]; then echo "make demo needs root or CAP_NET_ADMIN (it creates a network namespace and a TUN device): run it as root"; exit 1; fi
	@$(MAKE) --no-print-directory deps build
	$(GO) build -o bin/demo ./integration/demo
	./bin/demo --ustack $(BIN)

clean:
	rm -rf bin
