# broker.sh -- sourced by the suites that start a real Mosquitto with the
# plugin (mosquitto_test.sh, faults_test.sh).
#
# broker_env PLUGIN: sets the array broker_env to the command prefix the
# broker needs.  A plugin built with AddressSanitizer can only be loaded by
# a process whose first library is the ASan runtime: preload it (and
# UBSan's); the suites then fail on any report in the broker's log.
broker_env() {
  broker_env=()
  if readelf -d "$1" 2>/dev/null | grep -q 'libasan'; then
    local pre= lib f
    for lib in asan ubsan; do
      f=$(gcc -print-file-name=lib$lib.so 2>/dev/null)
      [ -f "$f" ] && pre="$pre $f"
    done
    broker_env=(env "LD_PRELOAD=${pre# }" ASAN_OPTIONS=detect_leaks=0:abort_on_error=0)
  fi
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
