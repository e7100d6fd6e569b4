#!/bin/sh
# web01: for 12 seconds, every process it can see is searched for web02's
# secret (command line, environment, its root's /tmp), web02's tree is
# written to through each process's root, and web02's service on the
# loopback is called.
pat="s3c""r3t-w2"
found=""
end=$(( $(date +%s) + 12 ))
while [ "$(date +%s)" -lt "$end" ]; do
  for p in /proc/[0-9]*; do
    hit=$(cat "$p/cmdline" "$p/environ" "$p/root/tmp/web02-secret" 2>/dev/null | tr '\0' '\n' | grep "$pat")
    [ -n "$hit" ] && found="$found $p"
    for f in "$p"/root/tmp/ansible-tmp-*/*; do
      grep -l "$pat" "$f" 2>/dev/null && found="$found $f"
    done
    echo planted > "$p/root/planted-by-web01" 2>/dev/null
    echo planted > "$p/root/probe/planted-by-web01" 2>/dev/null
  done
  # web02's service on 127.0.0.1:7777, while it runs.
  python3 -c 'import socket
try:
    print("connected:", socket.create_connection(("127.0.0.1", 7777), timeout=1).recv(64))
except OSError as e:
    print("refused:", e)' >> /probe/web02-service
  sleep 0.3
done
echo "found:$found" > /probe/scan
ls -d /proc/[0-9]* | wc -l > /probe/pids
for p in /proc/[0-9]*; do cat "$p/comm" 2>/dev/null; done > /probe/comms
