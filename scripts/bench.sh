#!/usr/bin/env bash
# Load comparison on this machine, in one run: h2load (the C reference) and the pool (the
# example client, release build) against the same three nginx h2c backends on 127.0.0.2-4,
# with the same connections (one per backend) and 63 concurrent streams in all. Prints
# requests/s, p50/p99 latency and the ratio, and writes them to Benchmarks/RESULTS.md.
set -euo pipefail
client="$1"
requests="${BENCH_REQUESTS:-100000}"
name="api.bench.svc.cluster.local"
source "$(dirname "$0")/local-fleet.sh"
ips=(127.0.0.2 127.0.0.3 127.0.0.4)

for ip in "${ips[@]}"; do start_nginx "$ip"; done
start_dns "$name" 30 "${ips[@]}"

echo "== h2load: 3 connections (one per backend) × 21 streams, $requests requests"
per=$((requests / 3))
for ip in "${ips[@]}"; do
  h2load -n "$per" -c 1 -m 21 "http://$ip:$port/" > "$work/h2load-$ip.txt" 2>&1 &
done
while pgrep -f "h2load -n $per" > /dev/null; do sleep 0.1; done
h2_rps=0
for ip in "${ips[@]}"; do
  rps=$(awk '/finished in/ { for (i = 1; i <= NF; i++) if ($i ~ /req\/s/) { gsub(",", "", $(i-1)); print $(i-1) } }' "$work/h2load-$ip.txt")
  h2_rps=$(python3 -c "print(round($h2_rps + ${rps:-0}))")
done
h2_p50=$(awk '/time for request:/ { print $6 }' "$work/h2load-${ips[0]}.txt")
echo "h2load: $h2_rps requests/s (mean request time on ${ips[0]}: $h2_p50)"

echo "== swift-lbpool (example client, release): 63 concurrent requests over the 3 addresses"
"$client" "http://$name:$port/" --requests "$requests" --concurrency 63 --dns-server "127.0.0.1:$dns_port" --json > "$work/pool.json"
read -r pool_rps pool_p50 pool_p99 failed < <(python3 -c "
import json; d = json.load(open('$work/pool.json'))
print(d['requestsPerSecond'], d['latencyMs']['p50'], d['latencyMs']['p99'], d['failed'])")
ratio=$(python3 -c "print(round($pool_rps / $h2_rps, 3) if $h2_rps else 0)")
echo "pool:   $pool_rps requests/s, p50 $pool_p50 ms, p99 $pool_p99 ms, $failed failed"
echo "ratio pool / h2load: $ratio"

cpu=$(awk -F: '/model name/ { print $2; exit }' /proc/cpuinfo | sed 's/^ *//')
{
  echo "# Benchmark results"
  echo
  echo "Written by \`make bench\` on $(date -u +%Y-%m-%d): $(nproc) cores ($cpu), $(swift --version 2>/dev/null | head -1), $(nginx -v 2>&1)."
  echo
  echo "Three nginx h2c backends on 127.0.0.2–4, one connection each, 63 concurrent streams in all, $requests requests."
  echo
  echo "| client | requests/s | p50 | p99 | ratio to h2load |"
  echo "|---|---|---|---|---|"
  echo "| $(h2load --version | head -1) | $h2_rps | mean $h2_p50 | | 1 |"
  echo "| swift-lbpool (release) | $pool_rps | $pool_p50 ms | $pool_p99 ms | $ratio |"
  echo
  echo "Not measured yet: AsyncHTTPClient, micro-benchmarks, the 1000-address scale case."
} > Benchmarks/RESULTS.md
cat Benchmarks/RESULTS.md
