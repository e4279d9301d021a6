#!/usr/bin/env bash
# exhook-grpc's authorize throughput against a do-nothing gRPC server
# (build/noop_grpc: the same gRPC core C API, threads and request-ahead, but
# it answers every call with a fixed ValuedResponse without reading it), under
# the same client load; then authorize latency while password checks run.
#
# Throughput: h2load (nghttp2-client) sends pre-encoded gRPC frames of real
# emqx.exhook.v2 ClientAuthorizeRequest messages (made with grpc_tools stubs
# from proto/exhook_v2.proto) over CONNS connections (EMQX's pool_size
# default is 8) with STREAMS calls in flight on each, for DUR seconds after
# WARM seconds of warm-up.  The two servers run at once on free ports, with
# the same --threads/--workers, and take turns: noop, exhook, noop, exhook...
# ROUNDS times each, for each request in REQS; the medians are printed.
# Client and servers share this machine's CPUs, so calls/s is partly the
# client's limit; the servers' CPU time per call (/proc/PID/stat over the
# measured window) shows exhook's own cost more directly, and the ratio of
# the two CPU costs is what a server-bound run would show.
# Requests (policies/, users in a fresh argon2id store):
#   pub_allow  acme:bob publishes tenants/acme/users/bob/telemetry  (allow,
#              30-tenants.policy: a regex with two captures)
#   pub_deny   d-00000001 (dev-00000001) publishes to device 00000002's topic
#              (deny, 20-devices.policy's closing deny, after the device rules)
#   sub        d-00000001 subscribes devices/00000001/down/#  (allow)
# h2load counts HTTP 200 even when grpc-status is an error, so before timing
# each server gets (a) the very bytes of each body through a real gRPC client
# (grpcio): exhook must answer allow/deny/allow, noop STOP_AND_RETURN true, and
# (b) 200 calls of each body through h2load that must return exactly 200
# 9-byte messages (an error status carries no message).  Any mismatch fails.
#
# Latency: a second exhook-grpc with --cache-ttl 0 (every login a full argon2id
# verification, the store's default hash) is probed by h2load at 1 call in
# flight, PROBE_RPS calls/s for PROBE seconds (--log-file: per-call times),
# alone and then while another h2load keeps AUTHN_INFLIGHT OnClientAuthenticate
# calls (d-00000001, right password) in flight on AUTHN_CONNS connections.
#
# Usage: bench/grpc_bench.sh [BUILD-DIR]   (default build/; builds nothing)
# Env: CONNS=8 STREAMS=16 DUR=4 WARM=1 ROUNDS=3 REQS="pub_allow pub_deny sub"
#      THREADS=2 WORKERS=4 PROBE=5 PROBE_RPS=2000 AUTHN_CONNS=8 AUTHN_INFLIGHT=32
set -euo pipefail
cd "$(dirname "$0")/.."
bdir=${1:-build}
case $bdir in /*) ;; *) bdir=$PWD/$bdir ;; esac
CONNS=${CONNS:-8} STREAMS=${STREAMS:-16} DUR=${DUR:-4} WARM=${WARM:-1} ROUNDS=${ROUNDS:-3}
REQS=${REQS:-pub_allow pub_deny sub} THREADS=${THREADS:-2} WORKERS=${WORKERS:-4}
PROBE=${PROBE:-5} PROBE_RPS=${PROBE_RPS:-2000} AUTHN_CONNS=${AUTHN_CONNS:-8}
AUTHN_INFLIGHT=${AUTHN_INFLIGHT:-32}
PY=/usr/bin/python3 # Debian's: has grpc and grpc_tools (a pyenv python3 may not)
for f in exhook-grpc noop_grpc exhookctl; do
  [ -x "$bdir/$f" ] || { echo "no $bdir/$f: build first (EXH_BENCH=ON for noop_grpc)" >&2; exit 2; }
done
command -v h2load >/dev/null || { echo "needs h2load (nghttp2-client)" >&2; exit 2; }
$PY -c 'import grpc, grpc_tools.protoc' 2>/dev/null || {
  echo "needs $PY with grpc and grpc_tools (python3-grpcio, python3-grpc-tools)" >&2; exit 2; }
ctl=$bdir/exhookctl

tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the store: a few users, default hash (argon2id) ----
DB=$tmp/exhook.db
$ctl --db "$DB" init >/dev/null
adduser() { # NAME PASSWORD [options]
  local u=$1 pw=$2
  shift 2
  printf '%s\n' "$pw" | $ctl --db "$DB" add-user "$u" --password-stdin "$@" >/dev/null
}
adduser d-00000001 devpw1 --clientid-pattern 'dev-[0-9a-f]{8}'
adduser d-00000002 devpw2 --clientid-pattern 'dev-[0-9a-f]{8}'
adduser backend bepw --group device-backend
adduser 'acme:bob' bobpw
adduser opsuser opspw --group ops

# ---- stubs, request bodies, checks ----
$PY -m grpc_tools.protoc -I"$PWD/proto" --python_out="$tmp" "$PWD/proto/exhook_v2.proto"
cat >"$tmp/gb.py" <<'EOF'
import os, struct, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import exhook_v2_pb2 as pb

meta = pb.RequestMeta(node='emqx@10.0.0.5', version='5.8.9', sysdescr='EMQX', cluster_name='emqxcl')
def client(clientid, username, peerhost, password=''):
    # as EMQX 5 fills it for client.authorize (the password only on authenticate)
    return pb.ClientInfo(node='emqx@10.0.0.5', clientid=clientid, username=username,
                         password=password, peerhost=peerhost, peerport=51234, sockport=1883,
                         protocol='mqtt', is_superuser=False, anonymous=False)
A = pb.ClientAuthorizeRequest
bob = client('acme-bob-01', 'acme:bob', '10.1.2.4')
dev = client('dev-00000001', 'd-00000001', '10.1.2.3')
# name: (request, the decision exhook must give)
REQS = {
    'pub_allow': (A(clientinfo=bob, type=A.PUBLISH, topic='tenants/acme/users/bob/telemetry',
                    result=True, meta=meta), True),
    'pub_deny': (A(clientinfo=dev, type=A.PUBLISH, topic='devices/00000002/up/temp',
                   result=True, meta=meta), False),
    'sub': (A(clientinfo=dev, type=A.SUBSCRIBE, topic='devices/00000001/down/#',
              result=True, meta=meta), True),
    'authn': (pb.ClientAuthenticateRequest(clientinfo=client('dev-00000001', 'd-00000001', '10.1.2.3',
                                                             'devpw1'), result=True, meta=meta), True),
    'authn_bad': (pb.ClientAuthenticateRequest(clientinfo=client('dev-00000001', 'd-00000001', '10.1.2.3',
                                                                 'wrong'), result=True, meta=meta), False),
}
AUTHN = ('authn', 'authn_bad')
PATH = '/emqx.exhook.v2.HookProvider/'

def body(name):
    with open(name + '.grpc', 'rb') as f:
        b = f.read()
    assert b[0] == 0 and struct.unpack('>I', b[1:5])[0] == len(b) - 5
    return b[5:]

cmd = sys.argv[1]
if cmd == 'write':              # framed bodies for h2load -d
    for k, (m, _) in REQS.items():
        b = m.SerializeToString()
        with open(k + '.grpc', 'wb') as f:
            f.write(b'\0' + struct.pack('>I', len(b)) + b)
elif cmd == 'check':            # check ADDR exhook|noop: the body files' bytes, real gRPC calls
    import grpc
    addr, who = sys.argv[2], sys.argv[3]
    bad = 0
    with grpc.insecure_channel(addr) as ch:
        for k, (_, want) in REQS.items():
            rpc = ch.unary_unary(PATH + ('OnClientAuthenticate' if k in AUTHN else 'OnClientAuthorize'),
                                 response_deserializer=pb.ValuedResponse.FromString)
            if who == 'noop':
                want = True
            try:
                r = rpc(body(k), timeout=10)
                got = (pb.ValuedResponse.ResponsedType.Name(r.type), r.WhichOneof('value'), r.bool_result)
            except grpc.RpcError as e:
                got = ('grpc error', str(e.code()), e.details())
            ok = got == ('STOP_AND_RETURN', 'bool_result', want)
            bad += not ok
            print(f'  {who:6} {k:9} -> {got[0]} {got[2]}' + ('' if ok else f'   MISMATCH: want {want}'))
    sys.exit(1 if bad else 0)
elif cmd == 'pct':              # pct LOG: h2load --log-file (start_us status elapsed_us)
    lat, non200 = [], 0
    with open(sys.argv[2]) as f:
        for line in f:
            p = line.split()
            if len(p) < 3: continue
            if p[1] != '200': non200 += 1
            lat.append(int(p[2]))
    lat.sort()
    q = lambda x: lat[min(len(lat) - 1, int(x * len(lat)))] / 1000 if lat else float('nan')
    print(f'p50 {q(.5):.2f} ms  p99 {q(.99):.2f} ms  max {lat[-1]/1000 if lat else 0:.2f} ms  '
          f'({len(lat)} calls, {non200} not HTTP 200)')
elif cmd == 'port':
    import socket
    s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])
EOF
(cd "$tmp" && $PY gb.py write)

start() { # NAME LOG COMMAND...: start a server on $port (set by the caller)
  local name=$1 log=$2
  shift 2
  "$@" >"$log" 2>&1 &
  spid=$!
  pids+=("$spid")
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.05
  done
  echo "$name did not start: $(cat "$log")" >&2
  exit 1
}
H2=(h2load -t 1 -H 'content-type: application/grpc' -H 'te: trailers')
url() { echo "http://127.0.0.1:$1/emqx.exhook.v2.HookProvider/$2"; }
method() { case $1 in authn*) echo OnClientAuthenticate ;; *) echo OnClientAuthorize ;; esac; }

port=$($PY "$tmp/gb.py" port)
ex_port=$port
start exhook-grpc "$tmp/exhook.log" "$bdir/exhook-grpc" --listen "127.0.0.1:$port" --db "$DB" \
  --policy "$PWD/policies" --threads "$THREADS" --workers "$WORKERS"
ex_pid=$spid
port=$($PY "$tmp/gb.py" port)
noop_port=$port
start noop_grpc "$tmp/noop.log" "$bdir/noop_grpc" --listen "127.0.0.1:$port" \
  --threads "$THREADS" --workers "$WORKERS"
noop_pid=$spid

echo "== correctness: the benchmark bodies through grpcio, then 200 calls each through h2load"
(cd "$tmp" && $PY gb.py check "127.0.0.1:$ex_port" exhook && $PY gb.py check "127.0.0.1:$noop_port" noop) || {
  echo "FAIL: wrong answers (see above)" >&2; exit 1; }
for who in exhook noop; do
  p=$ex_port
  [ $who = noop ] && p=$noop_port
  for r in $REQS; do
    out=$("${H2[@]}" -n 200 -c 2 -m 4 -d "$tmp/$r.grpc" "$(url "$p" "$(method "$r")")" 2>&1)
    data=$(sed -n 's/^traffic:.*(\([0-9]*\)) data$/\1/p' <<<"$out")
    ok=$(sed -n 's/^requests:.* \([0-9]*\) succeeded.*/\1/p' <<<"$out")
    if [ "$ok" != 200 ] || [ "$data" != 1800 ]; then
      echo "FAIL: h2load $who $r: $ok of 200 succeeded, $data bytes of messages (want 1800 = 200 x 9)" >&2
      exit 1
    fi
  done
  echo "  $who: h2load got 200 x 9-byte ValuedResponse for each of: $REQS"
done

# ---- throughput ----
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ms() { # h2load time -> ms
  awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} \
        else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.2f\n", v}'
}
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, ticks
run() { # WHO PORT PID REQ ROUND -> appends "rps mean sd max cpu_us" to $tmp/res.WHO.REQ
  "${H2[@]}" -c "$CONNS" -m "$STREAMS" -D "$DUR" --warm-up-time "$WARM" -d "$tmp/$4.grpc" \
    "$(url "$2" OnClientAuthorize)" >"$tmp/h2.out" 2>&1 &
  local hp=$! c0 c1
  # the server's CPU time over the measured window (after the warm-up)
  sleep "$WARM"
  c0=$(cpu "$3")
  sleep "$DUR"
  c1=$(cpu "$3")
  wait $hp || true
  local out rps bad mean sd max us
  out=$(cat "$tmp/h2.out")
  rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
  bad=$(sed -n 's/^requests:.* \([0-9]*\) failed, \([0-9]*\) errored, \([0-9]*\) timeout/\1 \2 \3/p' <<<"$out")
  read -r _ _ _ _ max mean sd _ <<<"$(grep '^time for request:' <<<"$out")"
  mean=$(ms <<<"$mean") sd=$(ms <<<"$sd") max=$(ms <<<"$max")
  if [ -z "$rps" ] || [ "$bad" != "0 0 0" ]; then
    echo "FAIL: h2load against $1 ($4): failed/errored/timeout = ${bad:-?}" >&2
    echo "$out" >&2
    exit 1
  fi
  us=$(awk -v c=$((c1 - c0)) -v t="$tck" -v r="$rps" -v d="$DUR" 'BEGIN {printf "%.1f", c / t * 1e6 / (r * d)}')
  printf '  %-2s %-11s calls/s %8.0f   latency mean %6.2f ms  sd %6.2f ms  max %7.2f ms   server CPU %5.1f us/call\n' \
    "$5" "$1" "$rps" "$mean" "$sd" "$max" "$us"
  echo "$rps $mean $sd $max $us" >>"$tmp/res.$1.$4"
}
col() { awk -v c="$1" '{print $c}' "$2" | median; }

echo
echo "== throughput: h2load -c $CONNS -m $STREAMS -t 1 -D $DUR --warm-up-time $WARM," \
  "$ROUNDS interleaved rounds each ($(nproc) CPUs shared by client and servers;" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo "   both: --threads $THREADS --workers $WORKERS; exhook-grpc: policies/ ($(cat policies/*.policy |
  grep -cE '^(allow|deny)') rules), default cache settings"
summary=()
for r in $REQS; do
  echo "-- $r ($(($(stat -c %s "$tmp/$r.grpc") - 5))-byte request)"
  for i in $(seq "$ROUNDS"); do
    run noop_grpc "$noop_port" "$noop_pid" "$r" "$i"
    run exhook-grpc "$ex_port" "$ex_pid" "$r" "$i"
  done
  n=$(col 1 "$tmp/res.noop_grpc.$r") e=$(col 1 "$tmp/res.exhook-grpc.$r")
  for who in noop_grpc exhook-grpc; do
    f=$tmp/res.$who.$r
    printf '%-11s calls/s %8.0f   (%s, median of %d; latency mean %.2f ms, sd %.2f ms, max %.2f ms; server CPU %.1f us/call)\n' \
      "$who" "$(col 1 "$f")" "$r" "$ROUNDS" "$(col 2 "$f")" "$(col 3 "$f")" "$(col 4 "$f")" "$(col 5 "$f")"
  done
  nc=$(printf %.1f "$(col 5 "$tmp/res.noop_grpc.$r")") ec=$(printf %.1f "$(col 5 "$tmp/res.exhook-grpc.$r")")
  ratio=$(awk -v e="$e" -v n="$n" 'BEGIN {printf "%.2f", e / n}')
  # each round's exhook run over the noop run just before it: drift cancels
  paired=$(paste -d' ' "$tmp/res.exhook-grpc.$r" "$tmp/res.noop_grpc.$r" |
    awk '{printf "%.2f\n", $1 / $6}' | tr '\n' ' ')
  pmed=$(tr ' ' '\n' <<<"$paired" | grep . | median)
  echo "ratio exhook/noop: $ratio  ($r; per round: ${paired}-> median $(printf %.2f "$pmed"))"
  own=$(awk -v a="$ec" -v b="$nc" 'BEGIN {printf "%.1f", a - b}')
  cratio=$(awk -v a="$ec" -v b="$nc" 'BEGIN {printf "%.2f", b / a}')
  echo "server CPU per call: exhook-grpc $ec us, noop_grpc $nc us: exhook's own work ~$own us;" \
    "CPU-bound ratio (noop/exhook CPU per call): $cratio ($r)"
  summary+=("ratio exhook/noop: $ratio  ($r: exhook-grpc $(printf %.0f "$e") vs noop_grpc $(printf %.0f "$n") calls/s; CPU/call $ec vs $nc us)")
done

# ---- authorize latency while password checks run ----
echo
echo "== authorize latency, 1 call in flight at $PROBE_RPS calls/s for $PROBE s (pub_allow), against a"
echo "   second exhook-grpc with --cache-ttl 0: every authentication a full argon2id verification"
port=$($PY "$tmp/gb.py" port)
iso_port=$port
start "exhook-grpc (cache off)" "$tmp/iso.log" "$bdir/exhook-grpc" --listen "127.0.0.1:$port" \
  --db "$DB" --policy "$PWD/policies" --threads "$THREADS" --workers "$WORKERS" --cache-ttl 0
iso_pid=$spid
(cd "$tmp" && $PY gb.py check "127.0.0.1:$iso_port" exhook >/dev/null) || {
  echo "FAIL: wrong answers from exhook-grpc --cache-ttl 0" >&2; exit 1; }
threads_cpu() { # PID: "tid ticks" per thread
  local t
  for t in /proc/"$1"/task/*; do echo "${t##*/} $(awk '{print $14 + $15}' "$t/stat")"; done | sort
}
probe() { # LOG: h2load appends to --log-file, so each LOG is new
  threads_cpu "$iso_pid" >"$1.cpu0"
  local t0=$SECONDS
  "${H2[@]}" -c 1 -m 1 --rps "$PROBE_RPS" -D "$PROBE" --warm-up-time 1 --log-file="$1" \
    -d "$tmp/pub_allow.grpc" "$(url "$iso_port" OnClientAuthorize)" >"$1.out" 2>&1
  threads_cpu "$iso_pid" >"$1.cpu1"
  # the server's busiest threads over the probe, % of one CPU
  busiest=$(join "$1.cpu0" "$1.cpu1" | awk -v t="$tck" -v s=$((SECONDS - t0)) \
    '{printf "%.0f\n", ($3 - $2) * 100 / t / (s ? s : 1)}' | sort -rn | head -6 | tr '\n' ' ')
}
probe "$tmp/alone.log"
echo "alone:                               authorize $($PY "$tmp/gb.py" pct "$tmp/alone.log")"
echo "  busiest server threads (% CPU): $busiest"
ac=$AUTHN_CONNS # EMQX's pool_size default: 8
am=$(((AUTHN_INFLIGHT + ac - 1) / ac))
"${H2[@]}" -c "$ac" -m $am -D $((PROBE + 3)) -d "$tmp/authn.grpc" \
  "$(url "$iso_port" OnClientAuthenticate)" >"$tmp/authn.out" 2>&1 &
apid=$!
pids+=("$apid")
sleep 1.5 # the authentication queues fill
probe "$tmp/busy.log"
wait $apid || true
printf 'with %2d authentications in flight: authorize %s\n' $((ac * am)) \
  "$($PY "$tmp/gb.py" pct "$tmp/busy.log")"
echo "  busiest server threads (% CPU): $busiest"
arps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$tmp/authn.out")
read -r _ _ _ _ amax amean _ <<<"$(grep '^time for request:' "$tmp/authn.out")"
adone=$(sed -n 's/^requests:.* \([0-9]*\) succeeded.*/\1/p' "$tmp/authn.out")
echo "  the authentications meanwhile ($ac connections x $am): ${adone:-?} answered in $((PROBE + 3)) s" \
  "(${arps:-?}/s; each $(ms <<<"${amean:-0}") ms on average, max $(ms <<<"${amax:-0}") ms, queueing included)"

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
