#!/usr/bin/env bash
# Make this machine able to run the Docker sandboxes: Debian's docker.io and debootstrap, a
# daemon that answers, and the base image. Idempotent: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if ((${#missing[@]})); then
  echo "setup-docker: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  log=/var/log/envsynth-dockerd.log
  echo "setup-docker: starting dockerd (log: $log)" >&2
  # Its own session, so that it outlives this script and the shell that ran it.
  setsid dockerd >"$log" 2>&1 </dev/null &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    echo "setup-docker: dockerd did not come up; the end of $log:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
fi

# Each image is built only when no image of its current recipe exists. The code-agent tests
# run repositories in Python, JavaScript and Go: build those toolchains here, once, rather
# than inside a test's time limit.
python3 -m envsynth images build base python node go
