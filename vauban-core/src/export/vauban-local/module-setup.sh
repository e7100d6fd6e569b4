#!/bin/bash
# vauban-local: a live boot from a local partition (root=live:PARTUUID=...)
# applies the host's conffs from that same partition (vauban.conffs=PATH),
# as livenet's live.updates= does over the network. Put into the image by
# vauban before it runs dracut; inert without vauban.conffs= on the command
# line.

check() {
    return 255
}

depends() {
    echo dmsquash-live img-lib
    return 0
}

install() {
    inst_hook pre-pivot 19 "$moddir/vauban-local-conffs.sh"
    inst_hook pre-pivot 95 "$moddir/vauban-local-release.sh"
}
