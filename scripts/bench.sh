#!/usr/bin/env bash
# `make bench`: one run on this machine, side by side against the same local nginx backends:
# h2load (the C reference), the pool (example client, release build) and AsyncHTTPClient, over
# h2c, h2 over TLS and HTTP/1.1; then the 1000-address scale case and the micro-benchmarks.
# Prints everything and writes Benchmarks/RESULTS.md.
# Usage: bench.sh ROUND-ROBIN-CLIENT BENCHMARKS-BIN-DIR UNTRACED-ROUND-ROBIN-CLIENT
# (the last: the example client built with the trait TracingCompiledOut, the baseline of the cost
# of tracing with no tracer).
set -euo pipefail
client="$1"
bin="$2"
untraced_client="$3"
requests="${BENCH_REQUESTS:-100000}"
# Requests of the large-body rows (4 MiB each).
big_requests="${BENCH_BIG_REQUESTS:-300}"
# Each load row is run this many times, interleaved with its reference, and the run with the
# median requests/s is reported: two cores shared by client and server make single runs noisy.
runs="${BENCH_RUNS:-5}"
name="api.bench.svc.cluster.local"
scale_name="api.scale.svc.cluster.local"
root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/scripts/local-fleet.sh"
ips=(127.0.0.2 127.0.0.3 127.0.0.4)
per=$((requests / 3))
rows=()

# With four cores or more, the backends run on the upper half and the pool's loop rows on the
# lower half, so that more loops have cores of their own; with fewer, everything shares.
cores=$(nproc)
client_pin=()
pinning="not pinned apart: $cores cores are too few to give client and backends their own"
if [ "$cores" -ge 4 ]; then
  export NGINX_CPUS="$((cores / 2))-$((cores - 1))"
  client_pin=(taskset -c "0-$((cores / 2 - 1))")
  pinning="nginx pinned to cores $NGINX_CPUS, the loop rows' client to cores 0-$((cores / 2 - 1))"
fi

make_certificates "$name" "${ips[@]}"
for ip in "${ips[@]}"; do start_nginx "$ip"; done
start_dns "$name" 30 "${ips[@]}"
for ip in "${ips[@]}"; do wait_for_port "$ip" "$tls_port"; wait_for_port "$ip" "$h1_port"; done

# CPU per request, besides requests/s: client and nginx share the two cores, so requests/s says
# how the two split them as much as how fast the client is; CPU time per request does not.
TIMEFORMAT='%U %S'
# server_ticks: CPU time (clock ticks) used so far by the nginx workers (children of the masters).
server_ticks() {
  local total=0 pid worker u s
  for pid in "${pids[@]}"; do
    for worker in $(pgrep -P "$pid" || true); do
      read -r u s < <(awk '{ print $14, $15 }' "/proc/$worker/stat")
      total=$((total + u + s))
    done
  done
  echo "$total"
}
# cpu_per_request TIME-FILE TICKS-BEFORE COUNT: sets client_us and server_us (µs per request).
cpu_per_request() {
  local after
  after=$(server_ticks)
  read -r client_us server_us < <(python3 -c "
u, s = open('$1').read().split()[-2:]
print(round((float(u) + float(s)) * 1e6 / $3, 1), round(($after - $2) * 1e6 / $(getconf CLK_TCK) / $3, 1))")
}

# h2load_run LABEL ARGS...: one h2load per backend at once; sums requests/s, keeps the mean
# request time of the first. Sets rps, mean, client_us and server_us.
h2load_run() {
  local label="$1" scheme="$2" p="$3"
  shift 3
  local h2load_pids=() before
  before=$(server_ticks)
  { time {
    for ip in "${ips[@]}"; do
      h2load -n "$per" "$@" "$scheme://$ip:$p/" > "$work/h2load-$label-$ip.txt" 2>&1 &
      h2load_pids+=($!)
    done
    for pid in "${h2load_pids[@]}"; do wait "$pid"; done
  }; } 2> "$work/time-$label.txt"
  cpu_per_request "$work/time-$label.txt" "$before" $((per * ${#ips[@]}))
  rps=0
  for ip in "${ips[@]}"; do
    local one
    one=$(awk '/finished in/ { for (i = 1; i <= NF; i++) if ($i ~ /req\/s/) { gsub(",", "", $(i-1)); print $(i-1) } }' "$work/h2load-$label-$ip.txt")
    rps=$(python3 -c "print(round($rps + ${one:-0}))")
  done
  mean=$(awk '/time for request:/ { print $6 }' "$work/h2load-$label-${ips[0]}.txt")
  echo "h2load $label: $rps requests/s (mean request time $mean); CPU per request: h2load $client_us µs, nginx $server_us µs"
}

# json_run LABEL COMMAND...: a client that prints the JSON summary. Sets rps, p50, p99, failed,
# client_us and server_us.
json_run() {
  local label="$1" before
  shift
  before=$(server_ticks)
  { time "$@" > "$work/$label.json" 2> "$work/$label.err"; } 2> "$work/time-$label.txt" || {
    echo "$label failed:" >&2; cat "$work/$label.err" "$work/$label.json" >&2; return 1; }
  cpu_per_request "$work/time-$label.txt" "$before" "$requests"
  read -r rps p50 p99 failed < <(python3 -c "
import json; d = json.load(open('$work/$label.json'))
print(d['requestsPerSecond'], d['latencyMs']['p50'], d['latencyMs']['p99'], d['failed'])")
  echo "$label: $rps requests/s, p50 $p50 ms, p99 $p99 ms, $failed failed; CPU per request: client $client_us µs, nginx $server_us µs"
}

ratio() { python3 -c "print(round($1 / $2, 3) if $2 else 0)"; }

# median ROW...: the row (space-separated, requests/s first) with the median requests/s.
median() { printf '%s\n' "$@" | sort -g -k1,1 | sed -n "$(( ($# + 1) / 2 ))p"; }
# median_cpu ROW...: the median of the 5th fields (client CPU per request) on their own.
median_cpu() { printf '%s\n' "$@" | awk '{ print $5 }' | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
# spread_cpu ROW...: the lowest and highest 5th field, as "LOW–HIGH".
spread_cpu() { printf '%s\n' "$@" | awk '{ print $5 }' | sort -g | awk 'NR == 1 { low = $1 } { high = $1 } END { print low "–" high }'; }
# failures ROW...: the sum of the 4th fields (failed requests) over every run.
failures() { printf '%s\n' "$@" | awk '{ total += $4 } END { print total + 0 }'; }

echo "== h2c: 3 connections (one per backend), 63 concurrent streams, $requests requests, $runs runs"
# The pool three ways: its workers on the pool's event loops (the example's default, SwiftNIO's
# shared group of one loop per core), the same on one event loop, and on Swift's global executor.
h2c_runs=(); pool_h2c_runs=(); pool_one_runs=(); pool_global_runs=(); pool_two_runs=(); pool_four_runs=(); pool_traced_runs=(); pool_untraced_runs=()
for round in $(seq "$runs"); do
  h2load_run h2c http "$port" -c 1 -m 21
  h2c_runs+=("$rps $mean $client_us $server_us")
  json_run pool-h2c "$client" "http://$name:$port/" --requests "$requests" --concurrency 63 --dns-server "127.0.0.1:$dns_port" --json --no-request-id
  pool_h2c_runs+=("$rps $p50 $p99 $failed $client_us $server_us")
  # The same build with tracing compiled out, right after: what tracing costs with no tracer.
  json_run pool-h2c-untraced "$untraced_client" "http://$name:$port/" --requests "$requests" --concurrency 63 --dns-server "127.0.0.1:$dns_port" --json --no-request-id
  pool_untraced_runs+=("$rps $p50 $p99 $failed $client_us $server_us")
  json_run pool-h2c-one-loop "${client_pin[@]}" "$client" "http://$name:$port/" --requests "$requests" --concurrency 63 --dns-server "127.0.0.1:$dns_port" --json --no-request-id --event-loops 1
  pool_one_runs+=("$rps $p50 $p99 $failed $client_us $server_us")
  json_run pool-h2c-global "$client" "http://$name:$port/" --requests "$requests" --concurrency 63 --dns-server "127.0.0.1:$dns_port" --json --no-request-id --executor global
  pool_global_runs+=("$rps $p50 $p99 $failed $client_us $server_us")
  # More loops: the workers spread over 2 and 4 loops of the pool's own group.
  json_run pool-h2c-two-loops "${client_pin[@]}" "$client" "http://$name:$port/" --requests "$requests" --concurrency 63 --dns-server "127.0.0.1:$dns_port" --json --no-request-id --event-loops 2
  pool_two_runs+=("$rps $p50 $p99 $failed $client_us $server_us")
  json_run pool-h2c-four-loops "${client_pin[@]}" "$client" "http://$name:$port/" --requests "$requests" --concurrency 63 --dns-server "127.0.0.1:$dns_port" --json --no-request-id --event-loops 4
  pool_four_runs+=("$rps $p50 $p99 $failed $client_us $server_us")
  # Every request traced (an in-memory tracer, spans dropped): what making spans costs. The
  # default row has no tracer bootstrapped, so the pool makes none.
  json_run pool-h2c-traced "$client" "http://$name:$port/" --requests "$requests" --concurrency 63 --dns-server "127.0.0.1:$dns_port" --json --no-request-id --trace
  pool_traced_runs+=("$rps $p50 $p99 $failed $client_us $server_us")
done
read -r h2c_rps h2c_mean h2c_client_us h2c_server_us < <(median "${h2c_runs[@]}")
pool_h2c=($(median "${pool_h2c_runs[@]}")); pool_h2c[3]=$(failures "${pool_h2c_runs[@]}")
pool_one=($(median "${pool_one_runs[@]}")); pool_one[3]=$(failures "${pool_one_runs[@]}")
pool_global=($(median "${pool_global_runs[@]}")); pool_global[3]=$(failures "${pool_global_runs[@]}")
pool_two=($(median "${pool_two_runs[@]}")); pool_two[3]=$(failures "${pool_two_runs[@]}")
pool_four=($(median "${pool_four_runs[@]}")); pool_four[3]=$(failures "${pool_four_runs[@]}")
pool_traced=($(median "${pool_traced_runs[@]}")); pool_traced[3]=$(failures "${pool_traced_runs[@]}")
pool_untraced=($(median "${pool_untraced_runs[@]}")); pool_untraced[3]=$(failures "${pool_untraced_runs[@]}")
# The no-tracer cost, CPU against CPU: the median of each series, and each series' range.
no_tracer_us=$(median_cpu "${pool_h2c_runs[@]}"); compiled_out_us=$(median_cpu "${pool_untraced_runs[@]}")
no_tracer_spread=$(spread_cpu "${pool_h2c_runs[@]}"); compiled_out_spread=$(spread_cpu "${pool_untraced_runs[@]}")
echo "tracing with no tracer: client CPU per request $no_tracer_us µs (runs $no_tracer_spread), compiled out $compiled_out_us µs (runs $compiled_out_spread): $(ratio "$no_tracer_us" "$compiled_out_us") ×"
echo "tracing: client CPU per request $(ratio "${pool_traced[4]}" "${pool_h2c[4]}") × untraced (${pool_traced[4]} µs traced, ${pool_h2c[4]} µs with no tracer)"
echo "median: h2load $h2c_rps, pool ${pool_h2c[0]}, on one event loop ${pool_one[0]}, on the global executor ${pool_global[0]}"
echo "ratio pool / h2load (h2c): $(ratio "${pool_h2c[0]}" "$h2c_rps"), one event loop $(ratio "${pool_one[0]}" "$h2c_rps"), global executor $(ratio "${pool_global[0]}" "$h2c_rps"), 2 loops $(ratio "${pool_two[0]}" "$h2c_rps"), 4 loops $(ratio "${pool_four[0]}" "$h2c_rps")"
echo "CPU per request pool / h2load (h2c): $(ratio "${pool_h2c[4]}" "$h2c_client_us"), one event loop $(ratio "${pool_one[4]}" "$h2c_client_us"), global executor $(ratio "${pool_global[4]}" "$h2c_client_us"), 2 loops $(ratio "${pool_two[4]}" "$h2c_client_us"), 4 loops $(ratio "${pool_four[4]}" "$h2c_client_us")"

echo "== h2 over TLS: same connections and streams, $runs runs"
tls_runs=(); pool_tls_runs=(); ahc_tls_runs=()
for round in $(seq "$runs"); do
  h2load_run tls https "$tls_port" -c 1 -m 21
  tls_runs+=("$rps $mean $client_us $server_us")
  json_run pool-tls "$client" "https://$name:$tls_port/" --requests "$requests" --concurrency 63 --dns-server "127.0.0.1:$dns_port" --ca-file "$work/ca.pem" --json --no-request-id
  pool_tls_runs+=("$rps $p50 $p99 $failed $client_us $server_us")
  json_run ahc-tls "$bin/AHCLoad" "https://${ips[0]}:$tls_port/" "https://${ips[1]}:$tls_port/" "https://${ips[2]}:$tls_port/" \
    --requests "$requests" --concurrency 63 --ca-file "$work/ca.pem"
  ahc_tls_runs+=("$rps $p50 $p99 $failed $client_us $server_us")
done
read -r tls_rps tls_mean tls_client_us tls_server_us < <(median "${tls_runs[@]}")
pool_tls=($(median "${pool_tls_runs[@]}")); pool_tls[3]=$(failures "${pool_tls_runs[@]}")
ahc_tls=($(median "${ahc_tls_runs[@]}")); ahc_tls[3]=$(failures "${ahc_tls_runs[@]}")
echo "median: h2load $tls_rps, pool ${pool_tls[0]}, AsyncHTTPClient ${ahc_tls[0]}; ratio pool / AsyncHTTPClient (h2 over TLS): $(ratio "${pool_tls[0]}" "${ahc_tls[0]}")"

echo "== HTTP/1.1: 63 connections (21 per backend), one request each at a time, $runs runs"
h1_runs=(); ahc_h1_runs=(); pool_h1_runs=(); pool_h1_one_runs=(); pool_h1_global_runs=()
for round in $(seq "$runs"); do
  h2load_run h1 http "$h1_port" --h1 -c 21 -m 1
  h1_runs+=("$rps $mean $client_us $server_us")
  # The pool over HTTP/1.1 (`--http1`): up to 32 connections per address (the default), of which
  # 63 concurrent requests use about 21 each. HTTP/1.1 batches nothing across requests (one write
  # per request whatever the loop), so the example's workers spread over every loop of the
  # shared group; then on one loop only, and on the global executor (the pool spreads the
  # connections itself).
  json_run pool-h1 "$client" "http://$name:$h1_port/" --http1 --requests "$requests" --concurrency 63 --dns-server "127.0.0.1:$dns_port" --json --no-request-id
  pool_h1_runs+=("$rps $p50 $p99 $failed $client_us $server_us")
  json_run pool-h1-one-loop "${client_pin[@]}" "$client" "http://$name:$h1_port/" --http1 --event-loops 1 --requests "$requests" --concurrency 63 --dns-server "127.0.0.1:$dns_port" --json --no-request-id
  pool_h1_one_runs+=("$rps $p50 $p99 $failed $client_us $server_us")
  json_run pool-h1-global "$client" "http://$name:$h1_port/" --http1 --executor global --requests "$requests" --concurrency 63 --dns-server "127.0.0.1:$dns_port" --json --no-request-id
  pool_h1_global_runs+=("$rps $p50 $p99 $failed $client_us $server_us")
  json_run ahc-h1 "$bin/AHCLoad" "http://${ips[0]}:$h1_port/" "http://${ips[1]}:$h1_port/" "http://${ips[2]}:$h1_port/" \
    --requests "$requests" --concurrency 63 --http1
  ahc_h1_runs+=("$rps $p50 $p99 $failed $client_us $server_us")
done
read -r h1_rps h1_mean h1_client_us h1_server_us < <(median "${h1_runs[@]}")
ahc_h1=($(median "${ahc_h1_runs[@]}")); ahc_h1[3]=$(failures "${ahc_h1_runs[@]}")
pool_h1=($(median "${pool_h1_runs[@]}")); pool_h1[3]=$(failures "${pool_h1_runs[@]}")
pool_h1_one=($(median "${pool_h1_one_runs[@]}")); pool_h1_one[3]=$(failures "${pool_h1_one_runs[@]}")
pool_h1_global=($(median "${pool_h1_global_runs[@]}")); pool_h1_global[3]=$(failures "${pool_h1_global_runs[@]}")
echo "median HTTP/1.1: h2load $h1_rps, pool ${pool_h1[0]}, AsyncHTTPClient ${ahc_h1[0]}; pool / h2load $(ratio "${pool_h1[0]}" "$h1_rps"), pool / AsyncHTTPClient $(ratio "${pool_h1[0]}" "${ahc_h1[0]}")"

echo "== large bodies: 4 MiB responses at /big, $big_requests requests, $runs runs, 3, 9 and 18 concurrent streams"
# big_cpu TIME-FILE MIB: sets big_user and big_sys, the client's user and system CPU (ms) per MiB.
big_cpu() {
  read -r big_user big_sys < <(python3 -c "
u, s = open('$1').read().split()[-2:]
print(round(float(u) * 1000 / $2, 3), round(float(s) * 1000 / $2, 3))")
}
# h2load_big LABEL SCHEME PORT STREAMS H2LOAD-ARGS...: one h2load per backend at once; sets big_mib
# (MiB/s, summed), big_user and big_sys.
h2load_big() {
  local label="$1" scheme="$2" p="$3" streams="$4" big_pids=() ip one rps=0
  shift 4
  { time {
    for ip in "${ips[@]}"; do
      h2load -n "$big_per" -c 1 -m "$streams" "$@" "$scheme://$ip:$p/big" > "$work/h2load-$label-$ip.txt" 2>&1 &
      big_pids+=($!)
    done
    for pid in "${big_pids[@]}"; do wait "$pid"; done
  }; } 2> "$work/time-$label.txt"
  for ip in "${ips[@]}"; do
    one=$(awk '/finished in/ { for (i = 1; i <= NF; i++) if ($i ~ /req\/s/) { gsub(",", "", $(i-1)); print $(i-1) } }' "$work/h2load-$label-$ip.txt")
    rps=$(python3 -c "print($rps + ${one:-0})")
  done
  big_mib=$(python3 -c "print(round($rps * 4, 1))")
  big_cpu "$work/time-$label.txt" $((big_per * 3 * 4))
}
big_per=$((big_requests / 3))
# The pool's inbound windows (Subconnection.streamWindow, .connectionWindow), as h2load flags.
pool_windows=(-w 20 -W 22)
big_rows=()
for streams in 1 3 6; do
  for proto in h2c tls; do
    if [ "$proto" = h2c ]; then scheme=http; p="$port"; extra=(); else scheme=https; p="$tls_port"; extra=(--ca-file "$work/ca.pem"); fi
    label="big-$proto-$streams"
    h2_runs=(); h2w_runs=(); pool_runs=()
    for round in $(seq "$runs"); do
      h2load_big "$label" "$scheme" "$p" "$streams"
      h2_runs+=("$big_mib $(python3 -c "print(round($big_user + $big_sys, 2))")")
      h2load_big "$label-windows" "$scheme" "$p" "$streams" "${pool_windows[@]}"
      h2w_runs+=("$big_mib $(python3 -c "print(round($big_user + $big_sys, 2))") $big_sys")
      saved_requests="$requests"; requests=$((big_per * 3))
      json_run "pool-$label" "$client" "$scheme://$name:$p/big" --requests "$requests" --concurrency $((streams * 3)) \
        --dns-server "127.0.0.1:$dns_port" --json --no-request-id "${extra[@]}"
      requests="$saved_requests"
      big_cpu "$work/time-pool-$label.txt" $((big_per * 3 * 4))
      pool_runs+=("$(python3 -c "print(round($rps * 4, 1))") $(python3 -c "print(round($big_user + $big_sys, 2))") $big_user $failed $big_sys")
    done
    read -r h2_mib h2_cpu < <(median "${h2_runs[@]}")
    read -r h2w_mib h2w_cpu h2w_sys < <(median "${h2w_runs[@]}")
    read -r pool_mib pool_cpu pool_user pool_failed pool_sys < <(median "${pool_runs[@]}")
    pool_failed=$(failures "${pool_runs[@]}")
    echo "large bodies $proto, $((streams * 3)) streams: h2load $h2_mib MiB/s ($h2_cpu ms CPU/MiB; with the pool's windows $h2w_cpu, system $h2w_sys), pool $pool_mib MiB/s ($pool_cpu ms CPU/MiB: user $pool_user, system $pool_sys), ratio $(ratio "$pool_mib" "$h2_mib")"
    big_rows+=("| $proto | $((streams * 3)) | $h2_mib MiB/s | $h2_cpu ms | $h2w_cpu ms ($h2w_sys) | $pool_mib MiB/s | $pool_cpu ms ($pool_user + $pool_sys) | $(ratio "$pool_mib" "$h2_mib") × h2load | $pool_failed |")
  done
done

echo "== scale: $scale_name with 1000 A records (TCP after UDP truncation), minConnections 1"
scale_ips=()
for i in $(seq 0 999); do scale_ips+=("127.1.$((i / 250)).$((i % 250 + 1))"); done
for ip in "${scale_ips[@]}"; do echo "$ip $scale_name" >> "$work/hosts"; done
kill -HUP "$dns_pid"
start_many_nginx "${scale_ips[@]}"
"$bin/ScaleProbe" "http://$scale_name:$port" "127.0.0.1:$dns_port" 1000 10 > "$work/scale.json"
read -r scale_addresses scale_connections scale_ready scale_rss scale_cpu < <(python3 -c "
import json; d = json.load(open('$work/scale.json'))
print(d['addresses'], d['connections'], d['readySeconds'], d['rssKiBPerConnection'], d['idleCorePercent'])")
echo "scale: $scale_addresses addresses, $scale_connections connections ready in $scale_ready s; $scale_rss KiB resident per idle connection; idle CPU $scale_cpu % of one core"

echo "== micro-benchmarks (package-benchmark)"
(cd "$root/Benchmarks" && swift package benchmark --format markdown --no-progress 2>/dev/null) > "$work/micro-raw.md" || {
  echo "the micro-benchmarks failed:" >&2; cat "$work/micro-raw.md" >&2; exit 1; }
# The tool's notes about its own runtime hooks are not results.
grep -v -e $'\e\[' -e '^Note: skipping LD_PRELOAD' "$work/micro-raw.md" > "$work/micro.md"
cat "$work/micro.md"

cpu=$(awk -F: '/model name/ { print $2; exit }' /proc/cpuinfo | sed 's/^ *//')
h2load_version=$(h2load --version | head -1)
{
  echo "# Benchmark results"
  echo
  echo "Written by \`make bench\` on $(date -u +%Y-%m-%d): $(nproc) cores ($cpu), $(swift --version 2>/dev/null | head -1), $(nginx -v 2>&1), $h2load_version."
  echo "Everything below ran in that one invocation, on this machine, against the same nginx backends (one worker each) on 127.0.0.2–4; $requests requests per run. Each load row is the run with the median requests/s of $runs, interleaved with its reference; failures are summed over all runs."
  echo
  echo "## Load: requests/s and latency"
  echo
  echo "| client | protocol | connections × streams | requests/s | p50 | p99 | failed | ratio | client CPU / request | nginx CPU / request |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  echo "| $h2load_version | h2c | 3 × 21 | $h2c_rps | mean $h2c_mean | | | 1 | $h2c_client_us µs | $h2c_server_us µs |"
  echo "| swift-lbpool (example client, release) | h2c | 3 × 21 (63 concurrent) | ${pool_h2c[0]} | ${pool_h2c[1]} ms | ${pool_h2c[2]} ms | ${pool_h2c[3]} | $(ratio "${pool_h2c[0]}" "$h2c_rps") × h2load | ${pool_h2c[4]} µs | ${pool_h2c[5]} µs |"
  echo "| swift-lbpool, \`--event-loops 1\` | h2c | 3 × 21 (63 concurrent) | ${pool_one[0]} | ${pool_one[1]} ms | ${pool_one[2]} ms | ${pool_one[3]} | $(ratio "${pool_one[0]}" "$h2c_rps") × h2load | ${pool_one[4]} µs | ${pool_one[5]} µs |"
  echo "| swift-lbpool, \`--executor global\` | h2c | 3 × 21 (63 concurrent) | ${pool_global[0]} | ${pool_global[1]} ms | ${pool_global[2]} ms | ${pool_global[3]} | $(ratio "${pool_global[0]}" "$h2c_rps") × h2load | ${pool_global[4]} µs | ${pool_global[5]} µs |"
  echo "| swift-lbpool, \`--event-loops 2\` (workers on both) | h2c | 3 × 21 per loop (63 concurrent) | ${pool_two[0]} | ${pool_two[1]} ms | ${pool_two[2]} ms | ${pool_two[3]} | $(ratio "${pool_two[0]}" "$h2c_rps") × h2load | ${pool_two[4]} µs | ${pool_two[5]} µs |"
  echo "| swift-lbpool, tracing compiled out (trait \`TracingCompiledOut\`) | h2c | 3 × 21 (63 concurrent) | ${pool_untraced[0]} | ${pool_untraced[1]} ms | ${pool_untraced[2]} ms | ${pool_untraced[3]} | $(ratio "${pool_untraced[0]}" "$h2c_rps") × h2load | ${pool_untraced[4]} µs | ${pool_untraced[5]} µs |"
  echo "| swift-lbpool, every request traced (\`--trace\`) | h2c | 3 × 21 (63 concurrent) | ${pool_traced[0]} | ${pool_traced[1]} ms | ${pool_traced[2]} ms | ${pool_traced[3]} | $(ratio "${pool_traced[0]}" "$h2c_rps") × h2load | ${pool_traced[4]} µs | ${pool_traced[5]} µs |"
  echo "| swift-lbpool, \`--event-loops 4\` (workers on all four) | h2c | 3 × 21 per loop (63 concurrent) | ${pool_four[0]} | ${pool_four[1]} ms | ${pool_four[2]} ms | ${pool_four[3]} | $(ratio "${pool_four[0]}" "$h2c_rps") × h2load | ${pool_four[4]} µs | ${pool_four[5]} µs |"
  echo "| $h2load_version | h2 + TLS | 3 × 21 | $tls_rps | mean $tls_mean | | | 1 | $tls_client_us µs | $tls_server_us µs |"
  echo "| swift-lbpool (example client, release) | h2 + TLS | 3 × 21 (63 concurrent) | ${pool_tls[0]} | ${pool_tls[1]} ms | ${pool_tls[2]} ms | ${pool_tls[3]} | $(ratio "${pool_tls[0]}" "$tls_rps") × h2load, $(ratio "${pool_tls[0]}" "${ahc_tls[0]}") × AsyncHTTPClient | ${pool_tls[4]} µs | ${pool_tls[5]} µs |"
  echo "| AsyncHTTPClient 1.37 (3 URLs in turn) | h2 + TLS | 1 per backend, 63 concurrent | ${ahc_tls[0]} | ${ahc_tls[1]} ms | ${ahc_tls[2]} ms | ${ahc_tls[3]} | $(ratio "${ahc_tls[0]}" "$tls_rps") × h2load | ${ahc_tls[4]} µs | ${ahc_tls[5]} µs |"
  echo "| $h2load_version --h1 | HTTP/1.1 | 63 × 1 | $h1_rps | mean $h1_mean | | | 1 | $h1_client_us µs | $h1_server_us µs |"
  echo "| swift-lbpool, \`--http1\` (workers on every loop of the shared group) | HTTP/1.1 | 63 concurrent, up to 32 connections per address | ${pool_h1[0]} | ${pool_h1[1]} ms | ${pool_h1[2]} ms | ${pool_h1[3]} | $(ratio "${pool_h1[0]}" "$h1_rps") × h2load, $(ratio "${pool_h1[0]}" "${ahc_h1[0]}") × AsyncHTTPClient | ${pool_h1[4]} µs | ${pool_h1[5]} µs |"
  echo "| swift-lbpool, \`--http1 --event-loops 1\` | HTTP/1.1 | 63 concurrent, up to 32 connections per address | ${pool_h1_one[0]} | ${pool_h1_one[1]} ms | ${pool_h1_one[2]} ms | ${pool_h1_one[3]} | $(ratio "${pool_h1_one[0]}" "$h1_rps") × h2load, $(ratio "${pool_h1_one[0]}" "${ahc_h1[0]}") × AsyncHTTPClient | ${pool_h1_one[4]} µs | ${pool_h1_one[5]} µs |"
  echo "| swift-lbpool, \`--http1 --executor global\` | HTTP/1.1 | 63 concurrent, up to 32 connections per address | ${pool_h1_global[0]} | ${pool_h1_global[1]} ms | ${pool_h1_global[2]} ms | ${pool_h1_global[3]} | $(ratio "${pool_h1_global[0]}" "$h1_rps") × h2load, $(ratio "${pool_h1_global[0]}" "${ahc_h1[0]}") × AsyncHTTPClient | ${pool_h1_global[4]} µs | ${pool_h1_global[5]} µs |"
  echo "| AsyncHTTPClient 1.37 (3 URLs in turn) | HTTP/1.1 | 63 × 1 | ${ahc_h1[0]} | ${ahc_h1[1]} ms | ${ahc_h1[2]} ms | ${ahc_h1[3]} | $(ratio "${ahc_h1[0]}" "$h1_rps") × h2load | ${ahc_h1[4]} µs | ${ahc_h1[5]} µs |"
  echo
  echo "CPU per request is user + system time over the run divided by its requests: the client's"
  echo "(all three h2load processes together), and that of the three nginx workers. Client and"
  echo "nginx share the two cores, so requests/s also depends on how the scheduler splits them;"
  echo "CPU per request does not, and it is what a faster client changes."
  echo
  echo "The example client's workers run on the pool's home event loop (\`LBPool.taskExecutor\`,"
  echo "one loop of SwiftNIO's shared group), where every connection of the pool is too: the default."
  echo "\`--event-loops N\` gives the pool a group of N loops of its own and spreads the workers over"
  echo "all N (\`LBPool.taskExecutors\`); each loop then gets its own connection to every backend."
  echo "\`--executor global\` leaves them on Swift's global executor, as a plain \`Task\` would."
  echo "Tracing: the rows without \`--trace\` run with no tracer bootstrapped, where the pool makes no"
  echo "span. What that costs is measured against the same client built with the package trait"
  echo "\`TracingCompiledOut\` (no tracing code on the request path), each run right after a default one:"
  echo "client CPU per request, median of $runs, **$no_tracer_us µs with tracing and no tracer, $compiled_out_us µs"
  echo "compiled out ($(ratio "$no_tracer_us" "$compiled_out_us") ×)**; the runs ranged over $no_tracer_spread and $compiled_out_spread µs."
  echo "\`--trace\` gives the pool the example's \`ReferenceTracer\`: random W3C ids, attributes and events"
  echo "kept under each span's lock, a \`traceparent\` field injected, the span dropped at its end where"
  echo "an exporter would queue it. Two spans and one injection per request:"
  echo "$(ratio "${pool_traced[4]}" "${pool_h2c[4]}") × the untraced client CPU per request."
  echo "Cores: $pinning."
  echo "Every client sends the same \`GET /\` with nothing but the pseudo-headers of its own (h2load"
  echo "adds \`user-agent\`): the example client runs with \`--no-request-id\`."
  echo
  echo "The pool reaches the three backends through one DNS name (dnsmasq); AsyncHTTPClient has no"
  echo "balancing of its own, so its load program sends to the three backend URLs in turn."
  echo
  echo "HTTP/1.1: the pool runs \`--http1\` with its defaults (one warm connection per address, another"
  echo "whenever all are busy, up to 32): 63 concurrent requests end up on about 21 connections per"
  echo "address, as h2load's and AsyncHTTPClient's do. Over HTTP/1.1 every request is its own write and"
  echo "read on its own connection, so nothing is batched: the example's workers spread over every loop of"
  echo "SwiftNIO's shared group (one per core), and a connection one more request needs goes on the loop"
  echo "of the task that asked, or, for a task on none of the pool's loops (the global executor), on the"
  echo "loop with the fewest of the address's connections. \`--event-loops 1\` keeps it all on one loop."
  echo
  echo "## Large responses: 4 MiB bodies"
  echo
  echo "\`GET /big\` (4 MiB, a static file) from the three backends; $big_requests requests per run, the median of $runs. h2load runs one"
  echo "connection per backend with 1, 3 or 6 concurrent streams; the pool runs 3, 9 or 18 concurrent requests over the same three"
  echo "addresses. CPU per MiB is the client's user + system time over the run divided by the MiB received. h2load runs"
  echo "twice: with its own windows (2^30, the server is never held back) and with the pool's (\`${pool_windows[*]}\`: 1 MiB per"
  echo "stream, 4 MiB per connection), in parentheses its system time. The pool's CPU is split into user + system."
  echo
  echo "On loopback the kernel sends the server's queued data in the context of the reader's \`read\` (the"
  echo "window update it sends processes the server's socket in softirq), so the *system* time per MiB depends on"
  echo "how much data the windows let the server keep queued, for h2load with the pool's windows as for the pool."
  echo "The pool's own work is its *user* time: compare it across the rows."
  echo
  echo "| protocol | concurrent streams | h2load | h2load CPU / MiB | h2load, pool's windows: CPU / MiB (system) | swift-lbpool | pool CPU / MiB (user + system) | ratio | failed |"
  echo "|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${big_rows[@]}"
  echo
  echo "## Scale: 1000 addresses"
  echo
  echo "One name with 1000 A records (127.1.0.1–127.1.3.250; the answer comes over TCP after UDP"
  echo "truncation), one nginx listening on all of them, \`minConnections\` 1, no requests."
  echo
  echo "| addresses | connections | all ready after | resident memory per idle connection | CPU while idle (10 s) |"
  echo "|---|---|---|---|---|"
  echo "| $scale_addresses | $scale_connections | $scale_ready s | $scale_rss KiB | $scale_cpu % of one core |"
  echo
  echo "## Micro-benchmarks"
  echo
  echo "package-benchmark (\`Benchmarks/Benchmarks/LBPoolBenchmarks\`); times and allocations per"
  echo "inner iteration (marked \`*\` where scaled), as the tool printed them."
  echo
  cat "$work/micro.md"
} > "$root/Benchmarks/RESULTS.md"
echo
echo "wrote Benchmarks/RESULTS.md"

# The load rows as a chart: requests/s and client CPU per request, per client.
{
  echo "\"h2load h2c\" $h2c_rps $h2c_client_us"
  echo "\"pool h2c\" ${pool_h2c[0]} ${pool_h2c[4]}"
  echo "\"pool h2c, 2 loops\" ${pool_two[0]} ${pool_two[4]}"
  echo "\"pool h2c, global executor\" ${pool_global[0]} ${pool_global[4]}"
  echo "\"pool h2c, traced\" ${pool_traced[0]} ${pool_traced[4]}"
  echo "\"h2load TLS\" $tls_rps $tls_client_us"
  echo "\"pool TLS\" ${pool_tls[0]} ${pool_tls[4]}"
  echo "\"AsyncHTTPClient TLS\" ${ahc_tls[0]} ${ahc_tls[4]}"
  echo "\"h2load --h1\" $h1_rps $h1_client_us"
  echo "\"pool HTTP/1.1\" ${pool_h1[0]} ${pool_h1[4]}"
  echo "\"pool HTTP/1.1, 1 loop\" ${pool_h1_one[0]} ${pool_h1_one[4]}"
  echo "\"AsyncHTTPClient HTTP/1.1\" ${ahc_h1[0]} ${ahc_h1[4]}"
} > "$work/chart.dat"
gnuplot <<PLOT
set terminal svg size 1000,460 dynamic font "sans,11" background "white"
set output "$root/Benchmarks/results.svg"
set multiplot layout 1,2 title "make bench, $(date -u +%Y-%m-%d), $(nproc) cores: 63 concurrent requests to three local nginx"
set style data histograms
set style histogram clustered gap 0.4
set style fill solid 0.8 border -1
set bmargin 10
set boxwidth 0.7
set xtics rotate by -40 left
set grid ytics
unset key
set title "requests/s (more is better)"
plot "$work/chart.dat" using 2:xtic(1) lc rgb "#3b7dd8"
set title "client CPU per request, µs (less is better)"
plot "$work/chart.dat" using 3:xtic(1) lc rgb "#d8823b"
unset multiplot
PLOT
echo "wrote Benchmarks/results.svg"
