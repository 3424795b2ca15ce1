#!/usr/bin/env bash
# Inputs for benches/classify_long.sh: 10 minutes and 10 hours of real audio (the shared
# recordings looped by benches/make_long_recording.sh), 16 kHz mono, as WAV, FLAC, MP3 and
# Ogg Vorbis. 16 kHz keeps 10 h of WAV at 1.2 GB and the encoders' time in minutes; the memory
# question (does RSS grow with length?) does not depend on the rate.
# Usage: benches/make_classify_inputs.sh [DIR]   (default target/classify-bench; never commit)
# Needs sox (with its FLAC, MP3 and Vorbis handlers) and lame.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-target/classify-bench}
mkdir -p "$dir"
[ -s "$dir/looped.wav" ] || benches/make_long_recording.sh "$dir/looped.wav" >/dev/null
# Exactly 600 s, 16 kHz mono 16-bit; -D: no dither, the same bytes every run.
[ -s "$dir/10m.wav" ] || sox -V1 -D "$dir/looped.wav" -r 16000 -c 1 -b 16 "$dir/10m.wav" trim 0 600
# 6 copies (1 h) for the Python peer, which holds the whole file.
[ -s "$dir/1h.wav" ] || sox -V1 -D "$dir/10m.wav" "$dir/1h.wav" repeat 5
# Eight files of 75 s (the 10 minutes cut in eight), for -j 1 against -j 2.
mkdir -p "$dir/eight"
for i in 0 1 2 3 4 5 6 7; do
  [ -s "$dir/eight/part$i.wav" ] || sox -V1 -D "$dir/10m.wav" "$dir/eight/part$i.wav" trim $((i * 75)) 75
done
# 60 copies: 36,000 s.
[ -s "$dir/10h.wav" ] || sox -V1 -D "$dir/10m.wav" "$dir/10h.wav" repeat 59
for len in 10m 10h; do
  [ -s "$dir/$len.flac" ] || sox -V1 "$dir/$len.wav" "$dir/$len.flac" &
  [ -s "$dir/$len.mp3" ] || lame --quiet -b 64 "$dir/$len.wav" "$dir/$len.mp3" &
  [ -s "$dir/$len.ogg" ] || sox -V1 "$dir/$len.wav" -C 3 "$dir/$len.ogg" &
  wait
done
ls -l "$dir"
