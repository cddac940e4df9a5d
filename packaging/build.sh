#!/usr/bin/env bash
# The installable app: a frozen one-folder bundle (PyInstaller, build.spec) and a .deb.
#   bash packaging/build.sh            # dist/cotrag-studio/ and dist/cotrag-studio_<v>_<arch>.deb
#   bash packaging/build.sh --smoke    # then check the bundle as a user meets it (packaging/smoke.py)
#   bash packaging/build.sh --smoke --install   # also install the .deb, use it as a new user,
#                                                 # remove it (root or sudo; replaces an installed one)
#   bash packaging/build.sh --no-deb   # the bundle only
#   bash packaging/build.sh --reuse    # package (and check) the bundle already in dist/
# Install the package with `sudo apt install ./dist/cotrag-studio_<v>_<arch>.deb` (or dpkg -i).
# Needs the source install (packaging/install.sh, run here if .venv is missing): the bundle
# is made from that environment, with its embedded default models.
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=0
DEB=1
INSTALL=0
REUSE=0
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    --no-deb) DEB=0 ;;
    --install) INSTALL=1 ;;
    --reuse) REUSE=1 ;;
    *) echo "build.sh: unknown option $arg (use --smoke, --install, --no-deb, --reuse)" >&2; exit 2 ;;
  esac
done
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
NAME=cotrag-studio
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if [ ! -x "$PY" ]; then
  say "no $VENV: running packaging/install.sh first"
  bash packaging/install.sh
fi
if ! "$PY" -c "import PyInstaller" 2>/dev/null; then
  say "installing PyInstaller into $VENV"
  "$PY" -m pip install -q --disable-pip-version-check "pyinstaller>=6.10,<7" "pyinstaller-hooks-contrib>=2024.10"
fi
if ((DEB)) && ! command -v dpkg-deb >/dev/null; then
  echo "build.sh: dpkg-deb is missing (a Debian/Ubuntu tool); use --no-deb for the bundle alone" >&2
  exit 1
fi

say "drawing the icons"
rm -rf build/icons
"$PY" packaging/icons.py build/icons

BUNDLE=dist/$NAME
frozen=0
if ((REUSE)) && [ -x "$BUNDLE/$NAME" ]; then
  say "reusing $BUNDLE"
else
  say "freezing the app (PyInstaller: several minutes)"
  started=$(date +%s)
  "$PY" -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller build.spec
  frozen=$(( $(date +%s) - started ))
fi
# the command line: the same program, started by another name (packaging/entry.py)
ln -sfn "$NAME" "$BUNDLE/cotrag"
built="frozen in ${frozen} s"
((frozen)) || built="reused"
say "bundle: $BUNDLE ($(du -sh "$BUNDLE" | cut -f1), $built)"

DEB_FILE=""
if ((DEB)); then
  VERSION=$("$PY" -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])")
  ARCH=$(dpkg --print-architecture)
  DEB_FILE=dist/${NAME}_${VERSION}_${ARCH}.deb
  say "packaging $DEB_FILE"
  root=build/deb
  rm -rf "$root"
  mkdir -p "$root/DEBIAN" "$root/opt" "$root/usr/bin" "$root/usr/share/applications" \
    "$root/usr/share/icons" "$root/usr/share/doc/$NAME"
  cp -a "$BUNDLE" "$root/opt/$NAME"
  ln -s "/opt/$NAME/$NAME" "$root/usr/bin/$NAME"
  ln -s "/opt/$NAME/cotrag" "$root/usr/bin/cotrag"
  sed -e "s|@EXEC@|/usr/bin/$NAME|g" -e "s|@TRYEXEC@|/usr/bin/$NAME|g" packaging/linux/$NAME.desktop \
    > "$root/usr/share/applications/$NAME.desktop"
  cp -r build/icons/hicolor "$root/usr/share/icons/"
  cp packaging/linux/copyright "$root/usr/share/doc/$NAME/copyright"
  size_kib=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
  cat > "$root/DEBIAN/control" <<EOF
Package: $NAME
Version: $VERSION
Section: science
Priority: optional
Architecture: $ARCH
Installed-Size: $size_kib
Maintainer: CoT-RAG Studio developers <cotrag-studio@users.noreply.github.com>
Depends: libc6 (>= 2.31), libgl1, libegl1, libfontconfig1, libfreetype6, libdbus-1-3,
 libglib2.0-0t64 | libglib2.0-0, libxkbcommon0, libxkbcommon-x11-0, libx11-xcb1,
 libxcb-cursor0, libxcb-icccm4, libxcb-image0, libxcb-keysyms1, libxcb-randr0,
 libxcb-render-util0, libxcb-shape0, libxcb-xinerama0, libxcb-xfixes0, libxcb-xkb1,
 libxcb-sync1, libxcb-shm0, libxcb-util1, libxrender1, libxi6, libsm6, libice6
Recommends: fonts-dejavu-core
Homepage: https://github.com/cotrag/cotrag-studio
Description: watch a small local model reason and search over your documents
 CoT-RAG Studio indexes your documents into knowledge bases, lets you ask questions
 and watch a small local model search and reason over them tag by tag, turns such
 traces into a training set, fine-tunes the model with LoRA and compares it with the
 base. A small default model and embedder are included: it works offline.
EOF
  for script in postinst postrm; do
    cat > "$root/DEBIAN/$script" <<'EOF'
#!/bin/sh
# The menu and icon caches; the user's data folder (~/.local/share/cotrag-studio) is never touched.
set -e
if command -v update-desktop-database >/dev/null 2>&1; then
  update-desktop-database -q /usr/share/applications || true
fi
if command -v gtk-update-icon-cache >/dev/null 2>&1; then
  gtk-update-icon-cache -q -t /usr/share/icons/hicolor || true
fi
exit 0
EOF
    chmod 0755 "$root/DEBIAN/$script"
  done
  started=$(date +%s)
  dpkg-deb --root-owner-group -Zxz --build "$root" "$DEB_FILE" >/dev/null
  say "$DEB_FILE ($(du -h "$DEB_FILE" | cut -f1), packed in $(( $(date +%s) - started )) s)"
  rm -rf "$root"
fi

if ((SMOKE)); then
  say "smoke test of the frozen bundle"
  args=("$BUNDLE")
  [ -n "$DEB_FILE" ] && args+=(--deb "$DEB_FILE")
  ((INSTALL)) && args+=(--install)
  echo "build time: $built"
  "$PY" packaging/smoke.py "${args[@]}"
fi
