# Sourced by demo.sh and bench.sh: local nginx h2c backends and a dnsmasq on loopback, in a
# scratch folder, all stopped and removed when the calling script exits.
# Sets: work, port (one port for every backend), dns_port. Defines start_nginx and start_dns.
work="$(mktemp -d /tmp/lbpool-fleet.XXXXXX)"
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

wait_for_port() { # wait_for_port IP PORT
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.05; done
  echo "nothing listens on $1:$2" >&2; exit 1
}

start_nginx() { # start_nginx IP: answers every request with "hello from IP"
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
  keepalive_requests 100000000;
  http2_max_concurrent_streams 128;
  server { listen $1:$port http2; location / { return 200 "hello from $1\n"; } }
}
CONF
  nginx -p "$dir" -c "$dir/nginx.conf" &
  pids+=($!)
  wait_for_port "$1" "$port"
}

start_dns() { # start_dns NAME TTL IP...: dnsmasq answering NAME with the IPs; sets dns_pid
  local name="$1" ttl="$2"
  shift 2
  : > "$work/hosts"
  for ip in "$@"; do echo "$ip $name" >> "$work/hosts"; done
  chmod 644 "$work/hosts"
  dnsmasq -k -C /dev/null --port="$dns_port" --listen-address=127.0.0.1 --bind-interfaces --no-resolv \
    --no-hosts --addn-hosts="$work/hosts" --local-ttl="$ttl" --local=/cluster.local/ --pid-file="$work/dnsmasq.pid" 2>"$work/dnsmasq.log" &
  dns_pid=$!
  pids+=($dns_pid)
  wait_for_port 127.0.0.1 "$dns_port"
}
