#!/bin/sh
# vauban.conffs=PATH names the host's conffs on the live partition, which
# dmsquash-live mounted at /run/initramfs/live. It is unpacked into /updates,
# which dmsquash-live's apply-live-updates (pre-pivot 20) copies over the new
# root, as it does for a conffs fetched over the network. A host whose conffs
# is missing or unreadable stops here: booting without its own identity and
# keys would be worse than not booting.

command -v getarg > /dev/null || . /lib/dracut-lib.sh
command -v unpack_img > /dev/null || . /lib/img-lib.sh

vauban_conffs=$(getarg vauban.conffs=)
if [ -n "$vauban_conffs" ]; then
    vauban_src="/run/initramfs/live/${vauban_conffs#/}"
    if [ ! -f "$vauban_src" ]; then
        die "vauban: no conffs ${vauban_conffs} on the live partition"
    fi
    info "vauban: applying the conffs ${vauban_conffs}"
    rm -rf /updates.vauban
    if ! unpack_img "$vauban_src" /updates.vauban; then
        die "vauban: cannot unpack the conffs ${vauban_conffs}"
    fi
    copytree /updates.vauban /updates
    rm -rf /updates.vauban
fi
unset vauban_conffs vauban_src
