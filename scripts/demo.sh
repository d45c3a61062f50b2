#!/usr/bin/env bash
# `make demo`: about 40 seconds of the round-robin example against local nginx h2c backends
# behind a dnsmasq that answers api.demo.svc.cluster.local, while the fleet changes the way a
# Kubernetes Deployment does: a pod joins, one restarts gracefully (and a long download from it
# resumes elsewhere on its connection's closing signal), one is killed, one leaves.
# Narrates each step as it happens, checks that no request failed, then prints the summary and
# draws each address's share of the requests over time (gnuplot) into DEMO_OUT (default
# .build/demo). Stops everything it started.
# Usage: demo.sh ROUND-ROBIN-CLIENT
set -euo pipefail
client="$1"
name="api.demo.svc.cluster.local"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${DEMO_OUT:-$root/.build/demo}"
mkdir -p "$out"
source "$root/scripts/local-fleet.sh"

say() { printf '\n==> %s\n' "$*"; }
declare -A master
start_pod() { # start_pod IP: an nginx backend; remembers its master's pid
  start_nginx "$1"
  master[$1]="${pids[-1]}"
}
set_dns() { # set_dns IP...: the addresses dnsmasq answers from now on
  : > "$work/hosts"
  for ip in "$@"; do echo "$ip $name" >> "$work/hosts"; done
  kill -HUP "$dns_pid"
}

for ip in 127.0.0.2 127.0.0.3 127.0.0.4; do start_pod "$ip"; done
start_pod 127.0.0.5
start_dns "$name" 2 127.0.0.2 127.0.0.3 127.0.0.4

url="http://$name:$port/"
timeline="$out/timeline.csv"
say "three pods behind $name (DNS TTL 2 s); 16 concurrent GETs for 40 s, and one long download"
"$client" "$url" --duration 40 --concurrency 16 --dns-server "127.0.0.1:$dns_port" \
  --live --timeline "$timeline" > "$work/client.txt" &
client_pid=$!
started=$SECONDS
: > "$work/marks"
mark() { echo "$((SECONDS - started)) $1" >> "$work/marks"; } # mark LABEL: a line on the chart, now
# The client's live lines and events, as they come.
tail -n +1 -f "$work/client.txt" --pid "$client_pid" &
client_tail=$!
# A 4 MiB download at 256 KiB/s (16 s), which resumes elsewhere when its connection closes.
"$client" "${url}stream" --follow --dns-server "127.0.0.1:$dns_port" > "$work/follow.txt" &
follow_pid=$!
tail -n +1 -f "$work/follow.txt" --pid "$follow_pid" &
follow_tail=$!
for _ in $(seq 100); do grep -q "answered" "$work/follow.txt" && break; sleep 0.1; done
# The pod serving the download restarts; of the other two, one is killed and one leaves.
streamed=$(awk '/answered/ { print $2; exit }' "$work/follow.txt")
others=()
for ip in 127.0.0.2 127.0.0.3 127.0.0.4; do [ "$ip" != "$streamed" ] && others+=("$ip"); done
killed="${others[0]}"
leaving="${others[1]}"
sleep 6

say "a fourth pod, 127.0.0.5, joins DNS: the pool dials it at the next lookup and gives it its share"
mark joins
set_dns 127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5
sleep 7

say "$streamed restarts gracefully: nginx sends GOAWAY, its open requests finish, new ones go elsewhere; the download hears the closing signal and resumes on another pod"
mark restart
kill -QUIT "${master[$streamed]}"
while kill -0 "${master[$streamed]}" 2>/dev/null; do sleep 0.1; done
start_pod "$streamed"
say "$streamed is back: the pool reconnects"
sleep 7

say "$killed is killed (SIGKILL): its connection breaks, idempotent requests are retried elsewhere, the address is ejected"
mark SIGKILL
# The master first (it would start a new worker), then its workers.
workers=$(pgrep -P "${master[$killed]}" || true)
kill -KILL "${master[$killed]}" || true
for worker in $workers; do kill -KILL "$worker" 2>/dev/null || true; done
sleep 4
say "its endpoint leaves DNS (Kubernetes takes the dead pod out of the Service)"
set_dns "$streamed" "$leaving" 127.0.0.5
sleep 4

say "$leaving leaves DNS (scaled down): its connection drains, the other two share the traffic"
mark leaves
set_dns "$streamed" 127.0.0.5
status=0
wait "$client_pid" || status=$?
follow_status=0
wait "$follow_pid" || follow_status=$?
# The client's summary table comes through its tail, before the verdict.
wait "$client_tail" "$follow_tail" 2>/dev/null || true

failed=$(awk '$1 == "total" { print $3 }' "$work/client.txt")
say "$(awk '$1 == "total" { print $2 }' "$work/client.txt") requests, ${failed:-?} failed; $(tail -1 "$work/follow.txt" | sed 's/^follow: /the download: /')"
if [ "$status" != 0 ] || [ "${failed:-1}" != 0 ]; then
  echo "requests failed (exit status $status)" >&2
  exit 1
fi
if [ "$follow_status" != 0 ] || ! grep -q "closing signal" "$work/follow.txt"; then
  echo "the download did not resume after its connection's closing signal" >&2
  exit 1
fi

# Each address's share of each second, then the chart.
python3 - "$timeline" "$out/shares.dat" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
addresses = sorted({r["address"] for r in rows if r["address"] != "-"}, key=lambda a: tuple(map(int, a.split("."))))
seconds = sorted({int(r["second"]) for r in rows})
with open(sys.argv[2], "w") as out:
    out.write("second " + " ".join(addresses) + "\n")
    for s in seconds:
        counts = {r["address"]: int(r["requests"]) for r in rows if int(r["second"]) == s}
        total = sum(counts.values()) or 1
        out.write(f"{s} " + " ".join(f"{100 * counts.get(a, 0) / total:.1f}" for a in addresses) + "\n")
PY
chart="$out/shares.svg"
columns=$(head -1 "$out/shares.dat" | wc -w)
gnuplot <<PLOT
set terminal svg size 900,420 dynamic font "sans,12" background "white"
set output "$chart"
set title "share of the requests per address, per second (make demo)"
set xlabel "seconds"
set ylabel "% of the requests"
set yrange [0:60]
set key outside right
set grid
$(awk '{ printf "set arrow from %d,0 to %d,60 nohead dt 2 lc \"gray\"\nset label \"%s\" at %.1f,57\n", $1, $1, $2, $1 + 0.3 }' "$work/marks")
plot for [i=2:$columns] "$out/shares.dat" using 1:i with linespoints title columnheader(i)
PLOT
say "chart of each address's share over time: $chart (timeline: $timeline)"
