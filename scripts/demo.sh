#!/usr/bin/env bash
# Runs the round-robin example against three local nginx h2c backends (127.0.0.2-4) behind a
# dnsmasq that answers api.demo.svc.cluster.local, then adds a fourth backend (127.0.0.5) to DNS
# while a second run is going and shows it taking traffic. Stops everything it started.
set -euo pipefail
client="$1"
name="api.demo.svc.cluster.local"
work="$(mktemp -d /tmp/lbpool-demo.XXXXXX)"
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
port="$(free_port)"
dns_port="$(free_port)"

start_nginx() { # start_nginx IP
  local dir="$work/nginx-$1"
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy; fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  keepalive_requests 1000000;
  server { listen $1:$port http2; location / { return 200 "hello from $1\n"; } }
}
CONF
  nginx -p "$dir" -c "$dir/nginx.conf" &
  pids+=($!)
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/$1/$port") 2>/dev/null && return 0; sleep 0.05; done
  echo "nginx on $1:$port did not start" >&2; exit 1
}

for ip in 127.0.0.2 127.0.0.3 127.0.0.4; do start_nginx "$ip"; done
printf '127.0.0.2 %s\n127.0.0.3 %s\n127.0.0.4 %s\n' "$name" "$name" "$name" > "$work/hosts"
chmod 644 "$work/hosts"
dnsmasq -k -C /dev/null --port="$dns_port" --listen-address=127.0.0.1 --bind-interfaces --no-resolv \
  --no-hosts --addn-hosts="$work/hosts" --local-ttl=5 --local=/cluster.local/ --pid-file="$work/dnsmasq.pid" 2>"$work/dnsmasq.log" &
dnsmasq_pid=$!
pids+=($dnsmasq_pid)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$dns_port") 2>/dev/null && break; sleep 0.05; done

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
kill -HUP "$dnsmasq_pid"
echo "(added 127.0.0.5 and reloaded dnsmasq)"
status=0
wait "$client_pid" || status=$?
cat "$work/second.txt"
if ! grep -q '^127.0.0.5 ' "$work/second.txt"; then
  echo "127.0.0.5 took no traffic" >&2; exit 1
fi
exit "$status"
