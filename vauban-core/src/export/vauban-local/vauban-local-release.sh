#!/bin/sh
# With rd.live.ram the squashfs runs from a copy in RAM and the conffs was
# applied: the live partition is unmounted, so that nothing of the running
# host holds it and `vauban disk --update` may write a new build beside it.

command -v getarg > /dev/null || . /lib/dracut-lib.sh

if [ -n "$(getarg vauban.conffs=)" ] && getargbool 0 rd.live.ram; then
    umount /run/initramfs/live 2> /dev/null \
        || warn "vauban: the live partition stays mounted at /run/initramfs/live"
fi
