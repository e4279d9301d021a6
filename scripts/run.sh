#!/usr/bin/env bash
# The main job: build exhook, run the example policies' own tests, lint them
# and show a few decisions with `exhookctl check`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
ctl=build/exhookctl

echo "== exhookctl test policies/"
$ctl test policies/
echo
echo "== exhookctl lint"
$ctl --policy policies lint
echo

show() {
  echo "\$ exhookctl check $*"
  $ctl --policy policies check "$@" || true
  echo
}
show --action publish --clientid dev-0a1b2c3d --topic devices/0a1b2c3d/up/temp
show --action publish --clientid dev-0a1b2c3d --topic devices/ffffffff/up/temp
show --action subscribe --username acme:joe --topic 'tenants/acme/shared/#'
show --action subscribe --username bob --topic '$SYS/#'
show --action connect --peerhost 127.0.0.1
