# Sourced by bench/run.sh and bench/profile.sh: the nginx origin both run.
#
# nginx_head DIR: the start of an nginx.conf for one worker in the
# foreground, with its pid, logs and temp files under DIR, no access log
# and long-lived keep-alive; the caller adds the rest of http { } and its
# closing brace.
nginx_head() {
  local dir=$1
  cat <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_timeout 75s;
    keepalive_requests 10000000;
CONF
}
#
# origin_conf DIR PORT BODY [EXTRA]: prints an nginx.conf for one worker,
# in the foreground, with its pid, logs and temp files under DIR, serving
# BODY (text/plain, 200) on 127.0.0.1:PORT with long-lived keep-alive.
# EXTRA is more nginx server blocks, inside http { }.
origin_conf() {
  local dir=$1 port=$2 body=$3 extra=${4:-}
  nginx_head "$dir"
  cat <<CONF
    server {
        listen 127.0.0.1:$port backlog=4096;
        location / {
            default_type text/plain;
            return 200 "$body";
        }
    }$extra
}
CONF
}
