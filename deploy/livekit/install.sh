#!/usr/bin/env bash
# Install the pinned LiveKit server into the repository's git-ignored tools folder:
#
#     deploy/livekit/install.sh            # -> .tools/bin/livekit-server
#
# Idempotent: a binary that already reports the pinned version is kept. Built from source with
# the Go toolchain through the Go module proxy (pure Go, CGO off, as LiveKit's release builds),
# so nothing is downloaded but modules: a cold build takes 2-3 minutes and ~1 GB of module
# cache. The tests that put a real server in the loop (tests/test_real_room.py and others) use
# this binary; without it they skip locally, naming this script (CI installs it first).
#
# Pinned: v1.13.5, the newest tag whose go.mod has no replace directives (`go install
# module@version` refuses those) and whose dependencies all resolve through the proxy.
set -euo pipefail

LIVEKIT_SERVER_VERSION="v1.13.5"
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${BRIDGE_TOOLS_DIR:-$root/.tools}/bin"
target="$bin/livekit-server"

if [ -x "$target" ] && "$target" --version 2>/dev/null | grep -q "version ${LIVEKIT_SERVER_VERSION#v}$"; then
  echo "livekit-server ${LIVEKIT_SERVER_VERSION} already installed: $target"
  exit 0
fi
command -v go >/dev/null || { echo "install.sh: Go is needed to build livekit-server" >&2; exit 1; }

mkdir -p "$bin"
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
echo "building livekit-server ${LIVEKIT_SERVER_VERSION} (Go module proxy; a few minutes cold)"
# The module is github.com/livekit/livekit-server (repository livekit/livekit); its binary is
# named after the package directory: `server`.
(cd "$build" && CGO_ENABLED=0 GOBIN="$build" \
  go install "github.com/livekit/livekit-server/cmd/server@${LIVEKIT_SERVER_VERSION}")
mv "$build/server" "$target"
"$target" --version
