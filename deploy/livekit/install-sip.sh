#!/usr/bin/env bash
# Install what phone calls need beside the LiveKit server (deploy/livekit/install.sh):
#
#     deploy/livekit/install-sip.sh      # Redis, sipp; livekit-sip -> .tools/bin/livekit-sip
#
# - Debian packages (`apt-get update` once, then install, only when something is missing):
#   redis-server (the LiveKit server keeps SIP trunks and dispatch rules in Redis, and talks to
#   the SIP service over it), sip-tester (sipp: a SIP caller streaming raw G.711 RTP), and the
#   cgo build inputs of livekit-sip: pkg-config, libopus-dev, libopusfile-dev, libsoxr-dev.
# - livekit-sip, built from the Go module proxy into the repository's git-ignored .tools/bin
#   (CGO on: it links libopus and libsoxr). Idempotent: a binary that reports the pinned
#   version is kept.
#
# Pinned: github.com/livekit/sip v1.11.0, the newest tag the team read (its go.mod: go 1.26,
# no replace directives, which `go install module@version` would refuse). On this workplace's
# machines the Go module proxy refuses the module outright: every version and the version
# list answer `403 Forbidden ... This module version is not available` (asked for v1.11.0,
# v1.10.2, v1.10.0, v1.9.0 and @latest), so no nearer tag can be tried either. A refusal is
# final: this script then says so and exits 0 without livekit-sip, and the phone tests run
# with the stand-in SIP participant (bridge/local/phone_caller.py). Any other failure to fetch
# or build stops the script (exit 1).
set -euo pipefail

LIVEKIT_SIP_VERSION="v1.11.0"
LIVEKIT_SIP_MODULE="github.com/livekit/sip"
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${BRIDGE_TOOLS_DIR:-$root/.tools}/bin"
target="$bin/livekit-sip"

# --------------------------------------------------------------------- Debian packages
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  for lib in opus opusfile soxr; do
    pkg-config --exists "$lib" 2>/dev/null || missing+=("lib$lib-dev")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "install-sip.sh: apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi
command -v redis-server >/dev/null || { echo "install-sip.sh: redis-server is missing" >&2; exit 1; }

# --------------------------------------------------------------------- livekit-sip
if [ -x "$target" ] && "$target" --version 2>/dev/null | grep -q "${LIVEKIT_SIP_VERSION#v}"; then
  echo "livekit-sip ${LIVEKIT_SIP_VERSION} already installed: $target"
  exit 0
fi
command -v go >/dev/null || { echo "install-sip.sh: Go is needed to build livekit-sip" >&2; exit 1; }

build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
# Ask the proxy for the module first: a refusal is told apart from a failed build.
if ! probe="$(cd "$build" && go mod download -json "${LIVEKIT_SIP_MODULE}@${LIVEKIT_SIP_VERSION}" 2>&1)"; then
  if grep -q "403 Forbidden" <<<"$probe"; then
    echo "install-sip.sh: livekit-sip NOT installed: the Go module proxy refuses" \
      "${LIVEKIT_SIP_MODULE}@${LIVEKIT_SIP_VERSION}:"
    grep -o '"Error": "[^"]*' <<<"$probe" | head -1 | sed 's/"Error": "/  /'
    echo "install-sip.sh: the phone tests use the stand-in SIP participant (see README, Phone calls)"
    exit 0
  fi
  echo "install-sip.sh: cannot fetch ${LIVEKIT_SIP_MODULE}@${LIVEKIT_SIP_VERSION}:" >&2
  echo "$probe" >&2
  exit 1
fi

mkdir -p "$bin"
echo "building livekit-sip ${LIVEKIT_SIP_VERSION} (cgo: libopus, libsoxr; a few minutes cold)"
(cd "$build" && CGO_ENABLED=1 GOBIN="$build" \
  go install "${LIVEKIT_SIP_MODULE}/cmd/livekit-sip@${LIVEKIT_SIP_VERSION}")
mv "$build/livekit-sip" "$target"
"$target" --version
