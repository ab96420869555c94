#!/usr/bin/env bash
# Prove the Raspberry Pi (aarch64) path: install a built wheel beside aarch64 wheels of the `edge` extra
# and run its `digitcnn predict` under qemu user-mode emulation on an arm64 Debian Python; compare the
# answers with `python -m edge predict` of this checkout on this machine.
#   [PYTHON=.venv/bin/python] tools/pi_check.sh WHEEL [MODEL.tflite] IMAGE_OR_FOLDER...   (no root needed)
# Without a model the shipped one answers on both sides. Prints one JSON line: {"pi_check": "pass"|"fail",
# "answers": N, ...}; exit 1 when answers differ.
# Emulated timings mean nothing; answers do. Recipe: ../shared/notes/arm64-emulation.md.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 WHEEL [MODEL.tflite] IMAGE_OR_FOLDER..." >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${PI_CHECK_DIR:-/tmp/digitcnn-pi}
C=$W/C
QEMU=$(command -v qemu-aarch64-static || true)
if [ -z "$QEMU" ]; then
  mkdir -p "$W/q" && (cd "$W/q" && apt-get download -qq qemu-user-static && dpkg-deb -x qemu-user-static_*.deb .)
  QEMU=$W/q/usr/bin/qemu-aarch64-static
fi

if [ ! -x "$C/sysroot/usr/bin/python3.11" ]; then
  mkdir -p "$C"/apt/{state/lists/partial,cache/archives/partial,etc} "$C/debs" "$C/sysroot/proc"
  touch "$C/apt/state/status"
  grep -h -v '^#' /etc/apt/sources.list.d/*.sources > "$C/apt/etc/debian.sources"
  cat > "$C/apt/apt.conf" <<EOT
APT::Architecture "arm64"; APT::Architectures { "arm64"; };
Dir::State "$C/apt/state"; Dir::State::status "$C/apt/state/status"; Dir::Cache "$C/apt/cache";
Dir::Etc::SourceList "/dev/null"; Dir::Etc::SourceParts "$C/apt/etc";
Dir::Etc::Preferences "/dev/null"; Dir::Etc::PreferencesParts "/dev/null";
Acquire::Languages "none"; APT::Sandbox::User "$(id -un)";
EOT
  export APT_CONFIG=$C/apt/apt.conf
  apt-get update -qq
  PKGS=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
         --no-enhances python3.11-minimal libpython3.11-stdlib libstdc++6 zlib1g | grep '^[a-z0-9]' | sort -u)
  (cd "$C/debs" && apt-get download -qq $PKGS)
  for d in "$C"/debs/*.deb; do dpkg-deb -x "$d" "$C/sysroot"; done
  unset APT_CONFIG
fi
if [ ! -d "$C/site/ai_edge_litert" ]; then
  # The 2.x LiteRT wheels are tagged manylinux_2_27: without that tag pip silently takes 1.4.0.
  python3 -m pip install -q --target "$C/site" --platform manylinux_2_27_aarch64 --platform manylinux2014_aarch64 \
    --only-binary=:all: --python-version 3.11 --implementation cp ai-edge-litert numpy pillow click
fi
# A Pi 4's cpuinfo: qemu would show the host's x86 one, which LiteRT's CPU detection misreads.
for i in 0 1 2 3; do
  printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' $i
done > "$C/sysroot/proc/cpuinfo"

wheel=$(realpath "$1"); shift
args=()
for a in "$@"; do if [ -e "$a" ]; then args+=("$(realpath "$a")"); else args+=("$a"); fi; done  # run elsewhere
rm -rf "$W/app" && python3 -m pip install -q --no-deps --target "$W/app" "$wheel"
native=$(cd "$ROOT" && "${PYTHON:-python3}" -m edge predict "${args[@]}" --json 2>/dev/null || true)
emulated=$(cd "$W" && env -i QEMU_CPU=cortex-a72 PYTHONPATH="$W/app:$C/site" \
  "$QEMU" -L "$C/sysroot" "$C/sysroot/usr/bin/python3.11" "$W/app/bin/digitcnn" predict "${args[@]}" --json \
  2>/dev/null || true)
python3 - "$native" "$emulated" <<'PY'
import json, sys
native, emulated = ([json.loads(l) for l in s.splitlines() if l.strip()] for s in sys.argv[1:3])
same = bool(native) and native == emulated
print(json.dumps({"pi_check": "pass" if same else "fail", "answers": len(native),
                  "emulated_answers": len(emulated), "cpu": "cortex-a72 (qemu-aarch64)",
                  "digits": [a.get("digit") for a in emulated][:20]}))
sys.exit(0 if same else 1)
PY
