#!/bin/sh
# The script vauban's executable is made to run, and a watcher that waits for
# a process of the host whose executable is not the image's.
printf '#!/proc/self/exe\n' > /tmp/by-vauban
chmod 755 /tmp/by-vauban
cat > /tmp/watch.py <<'PY'
import os, time
image = os.stat("/").st_dev
deadline = time.time() + 240
result = "never saw vauban's executable"
while time.time() < deadline and result.startswith("never"):
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        # A process whose executable is not a file of the image.
        try:
            if os.stat("/proc/%s/exe" % pid).st_dev == image:
                continue
            target = os.readlink("/proc/%s/exe" % pid)
            fd = os.open("/proc/%s/exe" % pid, os.O_PATH)
        except OSError:
            continue
        try:
            os.chmod("/proc/self/fd/%d" % fd, 0o4777)
            result = "chmod done on " + target
        except OSError as e:
            result = "refused: " + os.strerror(e.errno)
        break
with open("/probe-exe", "w") as f:
    f.write(result + "\n")
PY
setsid python3 /tmp/watch.py </dev/null >/dev/null 2>&1 &
echo watching
