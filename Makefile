# pos-relay: every target works on a fresh Debian machine whose system Node is
# older than 22: `npm install` brings Node 24 (the registry's `node` package)
# into node_modules/.bin, which npm scripts and npx put first on PATH.
.PHONY: setup build dev test test-kube e2e-kind e2e-kind-down image chart test-nat test-clients clients bench clean

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

# kind cluster: one control plane and two workers, the image built from
# relay-image/Dockerfile, the chart packaged by `make chart`, then the RelayPool
# scenario (e2e/kind/README.md). Without a container registry (or with
# E2E_KIND_OFFLINE=1) every image is built locally first (e2e/kind/offline/).
# E2E_KIND_KEEP=1 leaves the cluster running; `make e2e-kind-down` deletes it.
e2e-kind: setup
	npm run test:kind

e2e-kind-down:
	bash e2e/kind/down.sh

# the pos-relay image (relay, discovery, operator): pos-relay:<version>
image:
	bash relay-image/build.sh

# the Helm chart, packaged into dist/ with version and appVersion from package.json
chart:
	bash charts/package.sh

# NAT lab (root): network namespaces + iptables NAT, js/rust-libp2p/go-libp2p
# peers through our relay; rust/go peers built into ~/.cache/pos-relay on first use
test-nat: setup
	npm run test:nat

# the Rust and Go client libraries: their examples built into ~/.cache/pos-relay
# (scripts/build-clients.sh), their own tests on the shared protocol vectors,
# and the examples end to end through a real relay with accounts on
clients:
	bash scripts/build-clients.sh

test-clients: setup
	npm run test:clients

bench: setup
	npm run bench

clean:
	npm run clean
