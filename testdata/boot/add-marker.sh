# Adds to a Debian image a systemd unit that prints the boot proof line that
# `cargo xtask boot-test` waits for (VAUBAN-BOOT-OK host=... secret=<conffs file>
# rootfs=<rootfs file>) on ttyS0, then powers off. Run with
# `vauban run IMAGE --commit NAME -- sh -c "$(cat testdata/boot/add-marker.sh)"`.
set -e
cat > /usr/local/bin/vauban-proof <<'EOS'
#!/bin/sh
# Prints the boot proof line on the serial console, then powers off.
line="VAUBAN-BOOT-OK host=$(cat /etc/hostname) secret=$(cat /etc/vauban-secret 2>/dev/null || echo none) rootfs=$(cat /etc/vauban-rootfs)"
echo "$line" > /dev/ttyS0
sleep 1
systemctl poweroff --no-block
EOS
chmod 0755 /usr/local/bin/vauban-proof
cat > /etc/systemd/system/vauban-proof.service <<'EOS'
[Unit]
Description=vauban boot proof line
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/bin/vauban-proof

[Install]
WantedBy=multi-user.target
EOS
mkdir -p /etc/systemd/system/multi-user.target.wants
ln -sf /etc/systemd/system/vauban-proof.service /etc/systemd/system/multi-user.target.wants/vauban-proof.service
echo from-rootfs > /etc/vauban-rootfs
