# ustack — build, test, fuzz, bench, demo.
GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 20s
BIN      := bin/ustack

.PHONY: build test fuzz bench demo vet clean

build:
	$(GO) build -o $(BIN) ./cmd/ustack

vet:
	$(GO) vet $(PKGS)

# Everything: vet, then every test (unit, fuzz seed corpora, namespace/TUN
# integration tests — those skip without root unless USTACK_REQUIRE_NETNS=1).
test: vet
	$(GO) test -count=1 -timeout 9m $(PKGS)

# Run every fuzz target in the module for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# Go benchmarks (allocation counts included).
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

clean:
	rm -rf bin
