# Sourced by the benchmark scripts after sck-server.sh (which sets WORK): a throw-away nginx
# (Debian's package, installed when missing) with one worker on a free loopback port, serving
# static files from a fresh directory readable by nginx's unprivileged worker ($WORK, sck's
# data directory, is not).
#
#   start_nginx [LOCATIONS]   LOCATIONS: extra directives inside its one `server { }`
#   stop_nginx
#
# start_nginx sets NGINX_WWW (the document root; put files there before or after), NGINX_PORT,
# NGINX_URL, NGINX_PID and NGINX_WORKER (the worker's pid, for its CPU time).

start_nginx() {
  local nginx
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
  [ -x "$nginx" ] || { apt-get update -qq >/dev/null; apt-get install -y -qq nginx >/dev/null; nginx=/usr/sbin/nginx; }
  NGINX_WWW=$(mktemp -d)
  chmod 755 "$NGINX_WWW"
  NGINX_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  NGINX_URL="http://127.0.0.1:$NGINX_PORT"
  mkdir -p "$WORK/ngx"
  cat > "$WORK/ngx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/ngx/nginx.pid;
error_log $WORK/ngx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/ngx/body;
  proxy_temp_path $WORK/ngx/proxy;
  fastcgi_temp_path $WORK/ngx/fastcgi;
  uwsgi_temp_path $WORK/ngx/uwsgi;
  scgi_temp_path $WORK/ngx/scgi;
  keepalive_requests 1000000;
  sendfile on;
  types { application/json json; application/octet-stream bin; application/gzip gz; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $NGINX_WWW;
    ${1:-}
  }
}
CONF
  "$nginx" -p "$WORK/ngx" -c "$WORK/ngx/nginx.conf" -e "$WORK/ngx/error.log" &
  NGINX_PID=$!
  for _ in $(seq 50); do
    NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -1) && curl -s -o /dev/null "$NGINX_URL/" && return 0
    sleep 0.1
  done
  cat "$WORK/ngx/error.log" >&2; echo "nginx did not start" >&2; exit 1
}

stop_nginx() {
  kill "$NGINX_PID" 2>/dev/null || true
  rm -rf "$NGINX_WWW"
}
