#!/usr/bin/env bash
# Installs what edgecell's build and tests need on a fresh machine, idempotently:
#   - the wasm32-wasip2 Rust target
#   - nats-server >= 2.10 (wadm needs it; Debian bookworm ships 2.9), into tools/bin
# Nothing is downloaded from release pages: nats-server comes from Debian's trixie suite,
# fetched with apt into a private state directory and unpacked with dpkg -x.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

say() { printf '[setup] %s\n' "$*"; }

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  say "adding the wasm32-wasip2 target"
  rustup target add wasm32-wasip2
fi

nats_ok() {
  local bin=$1 v
  [ -x "$bin" ] || return 1
  v=$("$bin" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1) || return 1
  [ -n "$v" ] || return 1
  local major=${v%%.*} rest=${v#*.}
  local minor=${rest%%.*}
  [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 10 ]; }
}

mkdir -p tools/bin
if nats_ok tools/bin/nats-server; then
  say "nats-server present: $(tools/bin/nats-server --version)"
elif command -v nats-server >/dev/null && nats_ok "$(command -v nats-server)"; then
  ln -sf "$(command -v nats-server)" tools/bin/nats-server
  say "using system nats-server: $(tools/bin/nats-server --version)"
else
  say "fetching nats-server from Debian trixie"
  mirror=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -oE 'https?://[^ ]*/debian/?' | grep -v security | head -n1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  apt_dir="$root/tools/.apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/etc"
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  echo "deb [signed-by=$keyring] ${mirror%/} trixie main" > "$apt_dir/etc/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/etc/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
            -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "APT::Get::List-Cleanup=0"
            -o "Debug::NoLocking=1" -q)
  apt-get "${apt_opts[@]}" update >/dev/null
  (cd "$apt_dir" && apt-get "${apt_opts[@]}" download nats-server 2>&1 | grep -v "unsandboxed" >&2 || true)
  deb=$(ls "$apt_dir"/nats-server_*.deb | head -n1)
  rm -rf "$apt_dir/unpacked"
  dpkg -x "$deb" "$apt_dir/unpacked"
  cp "$(find "$apt_dir/unpacked/usr" -type f -name nats-server | head -n1)" tools/bin/nats-server
  chmod +x tools/bin/nats-server
  nats_ok tools/bin/nats-server || { echo "nats-server from $deb is older than 2.10" >&2; exit 1; }
  say "installed $(tools/bin/nats-server --version) into tools/bin"
fi
