# pos-relay: every target works on a fresh Debian machine whose system Node is
# older than 22: `npm install` brings Node 24 (the registry's `node` package)
# into node_modules/.bin, which npm scripts and npx put first on PATH.
.PHONY: setup build dev test test-kube e2e-kind test-nat bench clean

setup: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json $(wildcard */package.json packages/*/package.json examples/*/package.json)
	npm install --no-audit --no-fund
	@touch $@

build: setup
	npm run build

# local mode: discovery (in-memory store) + one relay on 127.0.0.1
dev: setup
	npx pos-relay dev

# all hermetic suites; starts its own redis-server (installed with apt-get when missing)
test: setup
	npm test

# real etcd + kube-apiserver (+ controller-manager) and helm, built from Go
# modules into ~/.cache/pos-relay on first use (~12 min on 2 cores), then cached
test-kube: setup
	npm run test:kube

# kind cluster (Docker + internet; not on the project's machines or in CI):
# builds the image, installs the chart, applies examples/relaypool.yaml and
# relays a payload between two SDK peers through the relay pod on hostPort
# 7373. Prerequisites and options: e2e/kind/README.md
e2e-kind: setup
	npm run test:kind

# NAT lab (root): network namespaces + iptables NAT, js/rust-libp2p/go-libp2p
# peers through our relay; rust/go peers built into ~/.cache/pos-relay on first use
test-nat: setup
	npm run test:nat

bench: setup
	npm run bench

clean:
	npm run clean
