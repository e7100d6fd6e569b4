#!/bin/sh
# Prints the demo's boot proof line, which `cargo xtask demo` waits for on the
# serial console (after sending the host's drift, below), then powers the
# machine off:
#   VAUBAN-BOOT-OK host=<hostname> conffs=<the conffs' host value> rootfs=<the
#   rootfs' value> root=<device(type) mounted on /> earlier-write=<none, or
#   kept when the file an earlier boot wrote is still there> live=<mounted
#   when the partition a disk boot came from is still mounted, else free>
# On a live boot the root is dracut's overlay over the squashfs (LiveOS_rootfs),
# and nothing written survives a reboot.
rootfs=$(sed -n 's/^value=//p' /etc/fleet-release 2>/dev/null)
conffs=$(cat /etc/vauban/host-value 2>/dev/null || echo none)
root=unknown
# The last entry for / in /proc/mounts is the one on top.
while read -r device mountpoint fstype _rest; do
    if [ "$mountpoint" = / ]; then
        root="$device($fstype)"
    fi
done < /proc/mounts
# The demo's drift (`drift_report:` on master-base put vauban-drift in the
# image): a file changed and one removed since boot, then what changed sent
# to the server this host booted from; `vauban diff --drift HOST` shows it.
if [ -x /usr/local/sbin/vauban-drift ]; then
    echo "changed on $(hostname) after boot" >> /etc/motd
    rm -f /etc/issue.net
    drift=$(/usr/local/sbin/vauban-drift 2>&1 | tail -n 1)
    echo "VAUBAN-DRIFT $drift" > /dev/ttyS0 2>/dev/null || true
fi
earlier=none
[ -e /var/lib/vauban-demo/written ] && earlier=kept
mkdir -p /var/lib/vauban-demo && date > /var/lib/vauban-demo/written
live=free
grep -q " /run/initramfs/live " /proc/mounts && live=mounted
line="VAUBAN-BOOT-OK host=$(hostname) conffs=$conffs rootfs=${rootfs:-none} root=$root earlier-write=$earlier live=$live"
echo "$line" > /dev/ttyS0 2>/dev/null || true
echo "$line"
sleep 1
systemctl poweroff --no-block || poweroff -f
