#!/usr/bin/env bash
# Load test on loopback. Starts Katana, nginx and the plain pure-Go pipeline
# on 127.0.0.1, drives each with wrk, and prints req/s, p50/p99 latency and
# peak RSS for:
#   resize misses JPEG->JPEG and JPEG->WebP (a new cache-busting version per
#   request, so every request decodes, resizes and encodes), hits on a
#   source, hits on a variant, nginx serving the same variant file, and the
#   plain pipeline (image/jpeg + x/image/draw ApproxBiLinear + image/jpeg).
# CPU/req is the server's CPU time (user and system) per request.
# Needs wrk and nginx (Debian: apt-get install wrk nginx-light).
#
#   scripts/load.sh                 DURATION=10s CONCURRENCY=8 by default
#   PHOTO=/path/to/big.jpg scripts/load.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dur=${DURATION:-10s}
conc=${CONCURRENCY:-8}
photo=${PHOTO:-$repo/testdata/photos/flower-1920x1080.jpg}
work=$(mktemp -d)
chmod 755 "$work" # nginx workers read the cache as another user
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for tool in wrk nginx; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] ||
    { echo "load.sh: $tool is missing (apt-get install wrk nginx-light)" >&2; exit 1; }
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

cd "$repo"
CGO_ENABLED=0 go build -tags nodynamic -o "$work/katana" .
CGO_ENABLED=0 go build -o "$work/plain" scripts/plain_pipeline.go
mkdir -p "$work/origin" "$work/nginx"
cp "$photo" "$work/origin/photo.jpg"

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "load.sh: nothing listens on port $1" >&2
  return 1
}

(cd "$work" && exec ./katana --admin "" --origin "$work/origin" --listen 127.0.0.1:18101 2>katana.log) &
katana=$!; pids+=("$katana")
"$work/plain" -listen 127.0.0.1:18103 -photo "$photo" 2>"$work/plain.log" &
plain=$!; pids+=("$plain")
cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes 2;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log $work/nginx/access.log;  # Katana writes an access log line too
  sendfile on;
  tcp_nopush on;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:18102;
    root $work/data;
    default_type image/jpeg;
  }
}
NGINX
"$nginx_bin" -c "$work/nginx/nginx.conf" &
nginx_pid=$!; pids+=("$nginx_pid")
wait_port 18101; wait_port 18102; wait_port 18103

# A new cache-busting version per request: every request is a resize miss.
cat >"$work/unique.lua" <<'LUA'
local counter, id = 0, 0
function setup(thread) thread:set("tid", math.random(1, 1e9)) end
function init(args) id = tid end
function request()
  counter = counter + 1
  return wrk.format("GET", string.format(wrk.path, id, counter))
end
LUA

rss_reset() { [[ -w /proc/$1/clear_refs ]] && echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }
rss_peak() { awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$1/status"; }
nginx_rss() {
  local total=0
  for p in $(pgrep -P "$nginx_pid" || true) "$nginx_pid"; do # this nginx's workers only
    total=$((total + $(awk '/VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$((total / 1024)) MiB"
}

# cpu_ticks prints the CPU time (user + system, in clock ticks) of pid and
# its children processes (nginx's workers).
cpu_ticks() {
  local total=0
  for p in $(pgrep -P "$1" || true) "$1"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

declare -A rps
run() { # name pid url [lua]
  local name=$1 pid=$2 url=$3 script=${4:-}
  local args=(-t2 "-c$conc" "-d$dur" --latency --timeout 10s)
  [[ -n $script ]] && args+=(-s "$script")
  rss_reset "$pid"
  local out ticks
  ticks=$(cpu_ticks "$pid")
  out=$(wrk "${args[@]}" "$url")
  ticks=$(($(cpu_ticks "$pid") - ticks))
  local r p50 p99 rss
  r=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  if [[ $name == nginx* ]]; then rss=$(nginx_rss); else rss=$(rss_peak "$pid"); fi
  local errs
  errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  rps[$name]=$r
  local n cpu
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  cpu=$(awk -v t="$ticks" -v n="$n" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { us = n > 0 ? t / hz * 1e6 / n : -1
             if (us < 0) print "-"; else if (us < 1000) printf "%.0f us", us; else printf "%.1f ms", us / 1000 }')
  printf "%-28s %10s req/s   p50 %9s   p99 %9s   peak RSS %8s   CPU/req %8s  %s\n" \
    "$name" "$r" "$p50" "$p99" "$rss" "$cpu" "$errs"
}

k=http://127.0.0.1:18101
curl -s -o /dev/null "$k/photo.jpg/resize-300x-q80.jpeg"
curl -s -o /dev/null "$k/photo.jpg/resize-300x-q80-1.webp"
variant=$(cd "$work/data" && ls photo-300x0-0-q80.jpeg)

echo "Katana load test, $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/model name/ {$1=$2=$3=""; print; exit}' /proc/cpuinfo | sed 's/^ *//')"
echo "photo: $(basename "$photo"), 300 px wide, q80, concurrency $conc, $dur each"
run "resize miss JPEG->JPEG" "$katana" "$k/photo.jpg/resize-300x-q80-%d%d.jpeg" "$work/unique.lua"
run "resize miss JPEG->WebP" "$katana" "$k/photo.jpg/resize-300x-q80-%d%d.webp" "$work/unique.lua"
run "plain pure-Go pipeline" "$plain" "http://127.0.0.1:18103/"
run "hit on source" "$katana" "$k/photo.jpg"
run "hit on variant" "$katana" "$k/photo.jpg/resize-300x-q80.jpeg"
run "nginx, same variant file" "$nginx_pid" "http://127.0.0.1:18102/$variant"
# Memory: 64 concurrent misses of a 13 MP phone photo against a 512 MiB
# budget. The photo comes from Debian's gdk-pixbuf-tests package.
big=${BIG_PHOTO:-/usr/libexec/installed-tests/gdk-pixbuf/issue70.jpg}
if [[ -f $big ]]; then
  mkdir -p "$work/big/origin"
  cp "$big" "$work/big/origin/big.jpg"
  printf 'max_memory = %d\n' $((512 << 20)) >"$work/big/katana.toml"
  (cd "$work/big" && exec "$work/katana" --admin "" --config katana.toml --origin "$work/big/origin" \
    --listen 127.0.0.1:18104 2>katana.log) &
  bigpid=$!; pids+=("$bigpid")
  wait_port 18104
  curl -s -o /dev/null "http://127.0.0.1:18104/big.jpg"
  for spec in "resize-300x-q80-%d%d.jpeg" "resize-1200x-q80-%d%d.jpeg" "resize-1200x-q80-%d%d.webp"; do
    conc=64 run "13 MP, 64 at once, ${spec%%-q80*}.${spec##*.}" "$bigpid" \
      "http://127.0.0.1:18104/big.jpg/$spec" "$work/unique.lua"
  done
  echo "13 MP photo: $(basename "$big"); max_memory 512 MiB; 503s are admission saying no"
else
  echo "13 MP photo $big not found (apt-get install gdk-pixbuf-tests): memory runs skipped"
fi
awk -v a="${rps[resize miss JPEG->JPEG]}" -v b="${rps[plain pure-Go pipeline]}" \
  -v c="${rps[hit on variant]}" -v d="${rps[nginx, same variant file]}" 'BEGIN {
  printf "ratios: resize miss / plain pipeline = %.2f (target 1.65, aim 2.15); hit / nginx = %.2f (target 0.8, aim 0.9)\n", a/b, c/d }'
