#!/usr/bin/env bash
# Runs the round-robin example against three local nginx h2c backends (127.0.0.2-4) behind a
# dnsmasq that answers api.demo.svc.cluster.local, then adds a fourth backend (127.0.0.5) to DNS
# while a second run is going and shows it taking traffic. Stops everything it started.
set -euo pipefail
client="$1"
name="api.demo.svc.cluster.local"
source "$(dirname "$0")/local-fleet.sh"

for ip in 127.0.0.2 127.0.0.3 127.0.0.4; do start_nginx "$ip"; done
start_dns "$name" 5 127.0.0.2 127.0.0.3 127.0.0.4

url="http://$name:$port/"
echo "== 3000 requests to $url (three addresses, TTL 5 s)"
"$client" "$url" --requests 3000 --concurrency 8 --dns-server "127.0.0.1:$dns_port"

echo
echo "== 12 s of requests; after 3 s, 127.0.0.5 is added to DNS"
start_nginx 127.0.0.5
"$client" "$url" --duration 12 --concurrency 8 --dns-server "127.0.0.1:$dns_port" > "$work/second.txt" &
client_pid=$!
sleep 3
echo "127.0.0.5 $name" >> "$work/hosts"
kill -HUP "$dns_pid"
echo "(added 127.0.0.5 and reloaded dnsmasq)"
status=0
wait "$client_pid" || status=$?
cat "$work/second.txt"
if ! grep -q '^127.0.0.5 ' "$work/second.txt"; then
  echo "127.0.0.5 took no traffic" >&2; exit 1
fi
exit "$status"
