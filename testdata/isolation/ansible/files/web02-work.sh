#!/bin/sh
# web02: its secret in a file of its /tmp, on its command line and in its
# environment for a while, then a mark that it worked.
echo "$SECRET" > /tmp/web02-secret
sh -c "sleep 8; : $SECRET" &
sleep 9
rm -f /tmp/web02-secret
echo worked > /probe/web02-worked
