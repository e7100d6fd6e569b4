#!/bin/sh
# web02: its secret in a file of its /tmp, on its command line and in its
# environment for a while, then a mark that it worked.
echo "$SECRET" > /tmp/web02-secret
sh -c "sleep 8; : $SECRET" &
# A service of web02's on its loopback, meanwhile.
python3 -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 7777)); s.listen(8)
s.settimeout(9)
try:
    while True:
        c, _ = s.accept(); c.sendall(b"web02-service\n"); c.close()
except OSError:
    pass' &
sleep 9
rm -f /tmp/web02-secret
echo worked > /probe/web02-worked
