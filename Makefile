# mxq: stateless MX receivers in front of one durable Redis queue.
SHELL := /bin/bash
GO ?= go
BIN := bin
RUN := run
REDIS_PORT ?= 6390

.PHONY: help build test test-network lint bench fuzz run deps clean

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

build: ## build the deployed commands (cmd/: mxd, listd, mxq, dnsctl) into bin/
	@# Their version is the commit go build stamps from a git clone (go version -m bin/mxd).
	$(GO) build -o $(BIN)/ ./cmd/...

deps: ## install the Debian packages the tests and `make run` need (idempotent)
	@.ci/install-deps

test: ## check the tracked files, install what is missing, then gofmt check, go vet, go test -race, the third_party patch check
	@# First, before any install: no built program, and no file over 1 MiB outside testdata/, is tracked.
	$(GO) test -count=1 -run '^(TestTrackedFiles|TestNothingTrackedIgnored)$$' ./test/
	@.ci/install-deps
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -timeout 20m ./...
	@# Upstream's TestServerAcceptErrorHandling races its own Close against
	@# Serve, and fails now and then with -race in the unpatched release too.
	cd third_party/go-smtp && $(GO) vet . && $(GO) test -race -skip '^TestServerAcceptErrorHandling$$' .
	@# third_party/go-smtp is the release in go.mod plus go-smtp.patch, nothing else.
	GO=$(GO) third_party/check-patch.sh

test-network: deps ## only the test network: real hosts in network namespaces, rolling maintenance and Redis failover under load (root)
	$(GO) test -count=1 -v -timeout 15m ./test/network/

lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

bench: deps build ## Go benchmarks, then the SMTP load comparison (tools/bench: mxd vs smtp-sink vs postfix)
	$(GO) test -run '^$$' -bench . -benchmem ./queue/ ./smtpd/ ./smtpd/msgauth/
	cd third_party/go-smtp && $(GO) test -run '^$$' -bench DataReader .
	$(GO) test -run '^$$' -bench 'Consume|EndToEnd' -benchtime 2000x ./lists/
	$(GO) test -run '^$$' -bench SMTPToAck -benchtime 1x ./cmd/listd/
	tools/bench/run.sh

FUZZTIME ?= 30s
fuzz: ## run every fuzz target for FUZZTIME (30s) each; new finds land in testdata/fuzz
	$(GO) test -run '^$$' -fuzz '^FuzzParseAddress$$' -fuzztime $(FUZZTIME) ./smtpd/
	$(GO) test -run '^$$' -fuzz '^FuzzSession$$' -fuzztime $(FUZZTIME) ./smtpd/
	$(GO) test -run '^$$' -fuzz '^FuzzParseKey$$' -fuzztime $(FUZZTIME) ./dnsctl/
	$(GO) test -run '^$$' -fuzz '^FuzzAppendLF$$' -fuzztime $(FUZZTIME) ./lists/

run: deps build ## run Redis (AOF on, data in run/), listd into run/maildir, and mxd on 127.0.0.1:2525
	@mkdir -p $(RUN)/redis $(RUN)/maildir
	@if ! redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1; then \
		redis-server --port $(REDIS_PORT) --bind 127.0.0.1 --dir $(CURDIR)/$(RUN)/redis \
			--appendonly yes --appendfsync always --auto-aof-rewrite-min-size 4gb --maxmemory 1gb --maxmemory-policy noeviction \
			--save '' --daemonize yes --pidfile $(CURDIR)/$(RUN)/redis.pid --logfile $(CURDIR)/$(RUN)/redis.log; \
		for i in $$(seq 50); do redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1 && break; sleep 0.1; done; \
	fi
	@printf 'redis = "redis://127.0.0.1:$(REDIS_PORT)/0"\nmetrics_listen = "127.0.0.1:9126"\n\n[[route]]\nmatch = "~*/*@lists.example.org"\nmaildir = "$(CURDIR)/$(RUN)/maildir"\n\n[[route]]\nmatch = "announce@lists.example.org"\nmaildir = "$(CURDIR)/$(RUN)/maildir"\n' > $(RUN)/listd.toml
	@echo "Redis on 127.0.0.1:$(REDIS_PORT) (data in $(RUN)/redis; stop it with: kill \$$(cat $(RUN)/redis.pid))"
	@echo "listd delivers to $(RUN)/maildir (log: $(RUN)/listd.log); mxd on 127.0.0.1:2525, metrics on :9125/metrics. Send with:"
	@echo "  swaks --server 127.0.0.1:2525 --from you@example.com --to '~alice/dev@lists.example.org'"
	@echo "then: $(BIN)/mxq -redis redis://127.0.0.1:$(REDIS_PORT)/0 stats; ls $(RUN)/maildir/new"
	@$(BIN)/listd -config $(RUN)/listd.toml 2>$(RUN)/listd.log & listd=$$!; \
		trap 'kill $$listd 2>/dev/null; wait $$listd' EXIT INT TERM; \
		$(BIN)/mxd -config docs/examples/mxd-local.toml

clean: ## remove bin/ and run/
	rm -rf $(BIN) $(RUN)
