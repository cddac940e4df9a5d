#!/usr/bin/env bash
# A menu entry for a source install, for this user only (no root): the app's icon in the
# user's hicolor theme and a launcher that starts VENV/bin/cotrag-studio.
#   bash packaging/linux/user-launcher.sh .venv            # add (packaging/install.sh runs this)
#   bash packaging/linux/user-launcher.sh --remove         # take it away again
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
NAME=cotrag-studio
APPS="$DATA/applications"
ICONS="$DATA/icons/hicolor"

if [ "${1:-}" = --remove ]; then
  rm -f "$APPS/$NAME.desktop"
  find "$ICONS" -path "*/apps/$NAME.*" -delete 2>/dev/null || true
  echo "removed the menu entry $APPS/$NAME.desktop"
  exit 0
fi
VENV=$(cd "${1:?usage: user-launcher.sh VENV | --remove}" && pwd)
EXEC="$VENV/bin/$NAME"
[ -x "$EXEC" ] || { echo "user-launcher.sh: $EXEC is missing (install the app first)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$VENV/bin/python" packaging/icons.py "$tmp" >/dev/null
mkdir -p "$APPS" "$ICONS"
cp -r "$tmp/hicolor/." "$ICONS/"
# Exec is quoted: the checkout's path may hold spaces.
sed -e "s|@EXEC@|\"$EXEC\"|g" -e "s|@TRYEXEC@|$EXEC|g" packaging/linux/$NAME.desktop > "$APPS/$NAME.desktop"
chmod 0644 "$APPS/$NAME.desktop"
if command -v update-desktop-database >/dev/null 2>&1; then
  update-desktop-database -q "$APPS" || true
fi
echo "menu entry: $APPS/$NAME.desktop (starts $EXEC)"
