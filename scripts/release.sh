#!/usr/bin/env bash
# Builds the release binaries: static, pure-Go katana for linux/amd64,
# linux/arm64 and linux/arm (ARMv7; GOARM=6 for older boards), with the
# version stamped from git, into bin/ (or $OUT), with a SHA256SUMS file.
# It fails when the amd64 binary is not statically linked.
#
#   scripts/release.sh                 all three targets
#   scripts/release.sh linux/arm64     only the ones named
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
out=${OUT:-$repo/bin}
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(linux/amd64 linux/arm64 linux/arm)
fi
mkdir -p "$out"

built=()
for target in "${targets[@]}"; do
  goos=${target%/*}
  goarch=${target#*/}
  name=katana-$version-$goos-$goarch
  echo "building $name" >&2
  CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch GOARM=${GOARM:-7} \
    go build -tags nodynamic -trimpath \
    -ldflags "-s -w -X main.version=$version" -o "$out/$name" .
  built+=("$name")
done

# A static binary has no program interpreter (no PT_INTERP segment).
amd64=$out/katana-$version-linux-amd64
if [[ -f $amd64 ]]; then
  if command -v readelf >/dev/null; then
    ! readelf -l "$amd64" | grep -q 'Requesting program interpreter'
  else
    file "$amd64" | grep -q 'statically linked'
  fi || { echo "release: $amd64 is dynamically linked" >&2; exit 1; }
  echo "$amd64: statically linked" >&2
fi

(cd "$out" && sha256sum "${built[@]}" > SHA256SUMS)
printf '%s\n' "${built[@]/#/$out/}"
