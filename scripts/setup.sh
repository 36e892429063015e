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

# ONNX Runtime for the inference provider's optional second engine (`--backend onnxruntime`):
# the shared library shipped in the onnxruntime wheel on PyPI, pinned by version and hash,
# unpacked into tools/onnxruntime (not committed). Loaded at run time by the `ort` crate.
# Not fatal: without it everything but that engine works (make test then fails the engine's
# tests on purpose, through EDGECELL_REQUIRE_ONNXRUNTIME, instead of skipping them).
ORT_VERSION=1.31.1
ort_dir=tools/onnxruntime

fetch_onnxruntime() {
  local plat sha wheel_dir wheel stage
  case "$(uname -m)" in
    x86_64) plat=manylinux_2_28_x86_64; sha=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f ;;
    aarch64) plat=manylinux_2_28_aarch64; sha=da05378364c44d4407e463982d2bf8d5e4cfea873283757e48beeb41df97b7f3 ;;
    *) say "no onnxruntime wheel pinned for $(uname -m)"; return 1 ;;
  esac
  python3 -m pip --version >/dev/null 2>&1 || { say "python3 -m pip is missing"; return 1; }
  say "fetching the onnxruntime $ORT_VERSION wheel from PyPI (for its shared library)"
  wheel_dir=$(mktemp -d)
  stage="$ort_dir.partial"
  rm -rf "$stage" && mkdir -p "$stage"
  if python3 -m pip download --quiet --no-deps --only-binary=:all: --platform "$plat" \
       --python-version 3.11 "onnxruntime==$ORT_VERSION" -d "$wheel_dir" \
     && wheel=$(ls "$wheel_dir"/onnxruntime-*.whl) \
     && echo "$sha  $wheel" | sha256sum --check --quiet \
     && python3 - "$wheel" "$stage" <<'PY'
import shutil, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    lib = [n for n in z.namelist() if n.startswith("onnxruntime/capi/libonnxruntime.so.")]
    if len(lib) != 1:
        sys.exit(f"expected one libonnxruntime.so.* in {wheel}, found {lib}")
    for src, dst in ((lib[0], "libonnxruntime.so"), ("onnxruntime/LICENSE", "LICENSE"),
                     ("onnxruntime/ThirdPartyNotices.txt", "ThirdPartyNotices.txt")):
        with z.open(src) as f, open(f"{out}/{dst}", "wb") as o:
            shutil.copyfileobj(f, o)
PY
  then
    echo "$ORT_VERSION" > "$stage/VERSION"
    rm -rf "$ort_dir" && mv "$stage" "$ort_dir"
    rm -rf "$wheel_dir"
    say "installed libonnxruntime $ORT_VERSION into $ort_dir"
  else
    rm -rf "$wheel_dir" "$stage"
    return 1
  fi
}

if [ -f "$ort_dir/libonnxruntime.so" ] && [ "$(cat "$ort_dir/VERSION" 2>/dev/null)" = "$ORT_VERSION" ]; then
  say "onnxruntime $ORT_VERSION present in $ort_dir"
elif ! fetch_onnxruntime; then
  say "WARNING: no ONNX Runtime library in $ort_dir; --backend onnxruntime needs ORT_DYLIB_PATH"
fi
