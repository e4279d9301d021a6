#!/usr/bin/env bash
# Install the Debian packages exhook needs to build and test, if missing.
# Sourced or run by scripts/run.sh and scripts/test.sh.
set -euo pipefail

EXH_PACKAGES=(
  gcc make cmake pkg-config
  libpcre2-dev      # regex engine (with JIT)
  libjansson-dev    # JSON for `check --batch`
  libcmocka-dev     # unit tests
  libsqlite3-dev    # credential store
  libpq-dev         # credential store on PostgreSQL (clusters): libpq
  libmicrohttpd-dev # the front ends' Prometheus /metrics endpoint
  postgresql        # a throwaway PostgreSQL 15 server for the store's tests (tests/lib/pg.sh)
  libargon2-dev     # argon2id password hashes
  libssl-dev        # libcrypto: PBKDF2, SHA-2, HMAC, random bytes
  libcrypt-dev      # bcrypt ($2b$) verification
  mosquitto         # real mosquitto_passwd output for the import tests
  erlang-dev        # ei (erl_interface) for exhook-driver
  erlang-nox        # a real Erlang VM for the driver's tests
  zlib1g-dev        # compressed external terms
  patch             # the add-rule --dry-run diff test applies its output
  python3           # test helpers (free ports, MQTT clients for the bench, checks)
  procps            # ps, pgrep in the integration tests
  mosquitto-dev     # the plugin API headers
  libmosquitto-dev
  mosquitto-clients # real clients for the plugin's end-to-end tests
  clang             # libFuzzer targets (test suite replays their corpora)
  libclang-rt-14-dev
  valgrind          # the driver's integration test, once under valgrind
  libgrpc-dev       # exhook-grpc: gRPC core's C API
  libprotobuf-c-dev # exhook-grpc: protobuf-c runtime
  protobuf-c-compiler # protoc-c: C code from proto/*.proto at build time
  python3-grpcio    # exhook-grpc's tests play EMQX with a real gRPC client
  python3-grpc-tools # its stubs, generated from the project's own proto/
  openssl           # certificates for the TLS tests
  nghttp2-client    # h2load: the gRPC benchmark's load generator
  curl              # the metrics tests scrape /metrics
  python3-prometheus-client # its exposition parser checks every scrape in the tests
)

missing=()
for p in "${EXH_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "exhook: installing ${missing[*]}" >&2
  SUDO=
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
