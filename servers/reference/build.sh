#!/usr/bin/env bash
# Builds the Go reference servers (Gin and net/http) into BUILD_DIR/bin from Debian's packages:
# golang-go and golang-github-gin-gonic-gin-dev, in GOPATH mode (Debian installs Go libraries
# under /usr/share/gocode). Nothing is downloaded. Exits 77 when Go or Gin is not installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../build}/bin
if ! command -v go >/dev/null 2>&1 || [[ ! -d /usr/share/gocode/src/github.com/gin-gonic/gin ]]; then
  echo "reference: Go or Gin missing (apt-get install golang-go golang-github-gin-gonic-gin-dev)" >&2
  exit 77
fi
mkdir -p "$bin"
export GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE=${GOCACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/iolab-go}
for name in gin nethttp; do
  if [[ ! -x $bin/server_$name || $here/$name/main.go -nt $bin/server_$name ]]; then
    go build -o "$bin/server_$name" "$here/$name/main.go"
  fi
done
echo "reference: $bin/server_gin $bin/server_nethttp"
