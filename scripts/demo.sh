#!/usr/bin/env bash
# make demo: an EIR on the embedded store, seeded from the demo scenario, a 10,000-subscriber attach
# run with every category, the verdict table, the HTML report and the pcap. Stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
EIR=.venv/bin/eir
SCENARIO=${SCENARIO:-config/scenarios/demo.yaml}
PORT=${PORT:-$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
RUN=var/demo/$(date -u +%Y%m%dT%H%M%SZ)
STORE=memory://$RUN/register.eir
mkdir -p "$RUN"
SERVE_PID=""
cleanup() {
  if [[ -n "$SERVE_PID" ]] && kill -0 "$SERVE_PID" 2>/dev/null; then
    kill -TERM "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT INT TERM

echo "== seeding $STORE from $SCENARIO"
$EIR testbed seed --scenario "$SCENARIO" --store "$STORE" --csv "$RUN/lists.csv"
echo "== starting eir serve on 127.0.0.1:$PORT (log: $RUN/eir.log)"
$EIR serve --listen "127.0.0.1:$PORT" --store "$STORE" --log-level warning >"$RUN/eir.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 1 100); do
  if .venv/bin/python -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$PORT)))"; then break; fi
  kill -0 "$SERVE_PID" 2>/dev/null || { echo "eir serve exited:"; cat "$RUN/eir.log"; exit 1; }
  sleep 0.1
done
echo "== attach scenario"
status=0
$EIR testbed attach --eir "127.0.0.1:$PORT" --scenario "$SCENARIO" --report "$RUN/report" || status=$?
echo "== HTML report: $RUN/report/report.html"
[[ -f "$RUN/report/run.pcap" ]] && echo "== pcap:        $RUN/report/run.pcap"
exit $status
