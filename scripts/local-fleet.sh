# Sourced by demo.sh and bench.sh: local nginx h2c backends and a dnsmasq on loopback, in a
# scratch folder, all stopped and removed when the calling script exits.
# Sets: work, port (one port for every backend, h2c), tls_port (h2 over TLS), h1_port
# (HTTP/1.1), dns_port. Defines make_certificates, start_nginx, start_many_nginx and start_dns.
work="$(mktemp -d /tmp/lbpool-fleet.XXXXXX)"
chmod 755 "$work"
# A 4 MiB body every backend serves at /big (large-response benchmarks).
BIG_BODY="$work/big.bin"
head -c $((4 << 20)) /dev/zero | tr '\0' 'b' > "$BIG_BODY"
chmod 644 "$BIG_BODY"
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
tls_port="$(free_port)"
h1_port="$(free_port)"
dns_port="$(free_port)"

wait_for_port() { # wait_for_port IP PORT
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.05; done
  echo "nothing listens on $1:$2" >&2; exit 1
}

make_certificates() { # make_certificates NAME IP...: a CA ($work/ca.pem) and a server certificate for NAME and the IPs
  local name="$1"
  shift
  local san="DNS:$name"
  for ip in "$@"; do san="$san,IP:$ip"; done
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj "/CN=bench CA" \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$name" \
    -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
  openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 1 \
    -extfile <(echo "subjectAltName=$san") -out "$work/server.pem" 2>/dev/null
  chmod 644 "$work"/*.pem "$work"/*.key
}

nginx_conf() { # nginx_conf DIR LISTEN-LINES BODY: a one-worker nginx answering every request with BODY
  cat > "$1/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile 16384;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $1/body; proxy_temp_path $1/proxy; fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;
  keepalive_requests 100000000;
  http2_max_concurrent_streams 128;
  server {
$2
    location / { return 200 "$3\n"; }
    location = /big { default_type application/octet-stream; alias $BIG_BODY; }
    location = /stream { default_type application/octet-stream; alias $BIG_BODY; limit_rate 256k; }
  }
}
CONF
}

# NGINX_CPUS (a taskset list), when set, pins the backends to those cores.
start_nginx() { # start_nginx IP: answers every request with "hello from IP"; h2c on $port, and with
  # certificates made, h2 over TLS on $tls_port and HTTP/1.1 on $h1_port
  local dir="$work/nginx-$1"
  mkdir -p "$dir"
  local listen="    listen $1:$port http2;"
  if [ -f "$work/server.pem" ]; then
    listen="$listen
    listen $1:$tls_port ssl http2;
    listen $1:$h1_port;
    ssl_certificate $work/server.pem;
    ssl_certificate_key $work/server.key;"
  fi
  nginx_conf "$dir" "$listen" "hello from $1"
  ${NGINX_CPUS:+taskset -c "$NGINX_CPUS"} nginx -p "$dir" -c "$dir/nginx.conf" &
  pids+=($!)
  wait_for_port "$1" "$port"
}

start_many_nginx() { # start_many_nginx IP...: one nginx listening (h2c, $port) on every IP given
  local dir="$work/nginx-many"
  mkdir -p "$dir"
  local listen=""
  for ip in "$@"; do listen="$listen    listen $ip:$port http2;
"; done
  nginx_conf "$dir" "$listen" "hello"
  ${NGINX_CPUS:+taskset -c "$NGINX_CPUS"} nginx -p "$dir" -c "$dir/nginx.conf" &
  pids+=($!)
  for ip in "$@"; do wait_for_port "$ip" "$port"; done
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
