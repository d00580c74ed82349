#!/bin/sh
# The proxy container's start: render the config of serving/proxy into /tmp/nginx (the root file system is
# read-only), make a self-signed certificate when none is mounted, run nginx in the foreground.
set -eu
prefix=${PROXY_PREFIX:-/tmp/nginx}
templates=${PROXY_TEMPLATES:-/etc/proxy}
mkdir -p "$prefix/tmp"
cert=${PROXY_TLS_CERT:-/run/secrets/tls.crt}
key=${PROXY_TLS_KEY:-/run/secrets/tls.key}
if [ ! -f "$cert" ] || [ ! -f "$key" ]; then
    cert=$prefix/self-signed.crt
    key=$prefix/self-signed.key
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=${PROXY_TLS_NAME:-localhost}" \
        -keyout "$key" -out "$cert" 2>/dev/null
    echo "proxy: no certificate mounted; serving TLS with a self-signed one for ${PROXY_TLS_NAME:-localhost}" >&2
fi
export PROXY_TLS_LISTEN="listen ${PROXY_TLS_PORT} ssl; ssl_certificate $cert; ssl_certificate_key $key;
    ssl_protocols TLSv1.2 TLSv1.3;"
export PROXY_LOAD_MODULES="load_module /usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so;"
export PROXY_CLEAR_SERVER="more_clear_headers Server;"
variables='${PROXY_LISTEN} ${PROXY_UPSTREAM} ${PROXY_MAX_BODY_BYTES} ${PROXY_CONNECTIONS_PER_CLIENT}
${PROXY_LOAD_MODULES} ${PROXY_CLEAR_SERVER} ${PROXY_TLS_LISTEN}'
envsubst "$variables" < "$templates/gateway.conf.template" > "$prefix/gateway.conf"
envsubst "$variables" < "$templates/nginx-local.conf.template" > "$prefix/nginx.conf"
exec nginx -p "$prefix" -c "$prefix/nginx.conf" -e stderr -g 'daemon off;'
