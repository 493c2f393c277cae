# rose-factory. Every target installs what it needs first (idempotently), from the npm registry only.
BUN := node_modules/.bin/bun
AGENT ?=

.PHONY: demo test check format once bench engines deps clean mutate

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.installed

# The real Claude Code and Codex CLIs the engine tests run (~700 MB, kept out of the main install).
engines/node_modules/.installed: engines/package.json engines/package-lock.json
	npm ci --prefix engines --no-audit --no-fund
	@touch $@

engines: engines/node_modules/.installed

demo: deps
	$(BUN) scripts/demo.ts

test: deps engines
	@bash test/run-all.sh

check: deps
	node_modules/.bin/tsc --noEmit -p .
	node_modules/.bin/eslint --max-warnings 0 lib scripts test bench
	node_modules/.bin/prettier --check --log-level warn lib scripts test bench
	node_modules/.bin/tsx scripts/start.ts --help > /dev/null
	node_modules/.bin/tsx scripts/demo.ts > /dev/null 2> .tsx-smoke.log || (cat .tsx-smoke.log; exit 1)
	@rm -f .tsx-smoke.log; echo "tsx smoke: start --help and the whole demo run on node"

# Rewrite every source file in the house style (make check fails on anything unformatted).
format: deps
	node_modules/.bin/prettier --write --log-level warn lib scripts test bench

# StrykerJS for `make mutate`, kept out of the main install like the engines (CI never needs it).
# Stryker 10 and Babel 8 declare Node >= 22 and run here on the project's Bun, so npm's engine
# warnings are not printed.
mutate/node_modules/.installed: mutate/package.json mutate/package-lock.json
	npm ci --prefix mutate --no-audit --no-fund --loglevel=error
	@touch $@

# Mutation testing of the pure decision modules listed in stryker.config.mjs, each mutant against
# only its module's test files; report in the terminal (and reports/mutation/index.html). Not in
# CI (~1.5 min): run it before changing those modules. `make mutate MODULES=lib/paths.ts` narrows it.
MODULES ?=
mutate: deps mutate/node_modules/.installed
	MODULES="$(MODULES)" $(BUN) mutate/node_modules/@stryker-mutator/core/bin/stryker.js run

once: deps
	@test -n "$(AGENT)" || (echo "usage: make once AGENT=<name from agents.yaml>" >&2; exit 2)
	$(BUN) scripts/start.ts --once --agent $(AGENT)

bench: deps engines
	@{ echo "# Benchmarks"; echo; echo "Each section names the command that produced it. Machine: 2 cores, shared (numbers are noisy; compare ratios within one run)."; echo; \
	  $(BUN) bench/poll.ts && echo && $(BUN) bench/idle-tick.ts && echo && $(BUN) bench/lifecycle.ts 2>/dev/null && echo && $(BUN) bench/state-size.ts 2>/dev/null && echo && $(BUN) bench/relay.ts 2>/dev/null && echo && $(BUN) bench/agent-session.ts 2>/dev/null && echo && $(BUN) bench/engine-overhead.ts --runs 20; } > BENCHMARKS.md.tmp && mv BENCHMARKS.md.tmp BENCHMARKS.md
	@cat BENCHMARKS.md

clean:
	rm -rf node_modules engines/node_modules mutate/node_modules
