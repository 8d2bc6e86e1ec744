#!/bin/sh
# Render a shot in chunks of frames, as a render farm would, here on one machine: the
# face is analysed once, then every chunk runs the same command on its own frame range
# (on a farm, each on another machine reading the same shared folder). The PNG frames the
# chunks write are, byte for byte, those of one whole render.
#
#   sh examples/farm/render_chunks.sh VIDEO PAINT SIDECAR OUT_PATTERN [CHUNK]
#   sh examples/farm/render_chunks.sh shot.mp4 face.edit.png face.json out/shot_%05d.png 50
set -eu
video=$1 paint=$2 sidecar=$3 out=$4 chunk=${5:-50}
analysis="${sidecar%.json}.analysis.npz"

x2face-edit analyse "$video" --sidecar "$sidecar" -o "$analysis" --force
frames=$(python -c "from x2face_edit.video import probe; print(probe('$video').frame_count)")
first=0
while [ "$first" -lt "$frames" ]; do
    last=$((first + chunk - 1))
    [ "$last" -ge "$frames" ] && last=$((frames - 1))
    x2face-edit render --edited "$paint" --sidecar "$sidecar" --drive "$video" -o "$out" \
        --analysis "$analysis" --frames "$first-$last"
    first=$((last + 1))
done
