#!/bin/sh
# A server of server-sent events that drains as a well-behaved app does: on SIGTERM it
# stops accepting (the listening httpd goes) and keeps its open streams until they end.
mkdir -p /tmp/www/cgi-bin
cp /app/events /tmp/www/cgi-bin/events
chmod 755 /tmp/www/cgi-bin/events
echo ok > /tmp/www/health
httpd -f -p 8080 -h /tmp/www &
listener=$!
trap 'kill $listener; wait $listener; touch /tmp/draining; while ps -o comm | grep -qx events; do sleep 0.2; done; exit 0' TERM
wait $listener
