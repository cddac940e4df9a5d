"""The app's icon in every form a desktop wants, drawn from ``resources/icons/app.svg``.

    .venv/bin/python packaging/icons.py OUT_DIR

writes ``OUT_DIR/hicolor/<N>x<N>/apps/cotrag-studio.png`` for the freedesktop sizes,
``OUT_DIR/hicolor/scalable/apps/cotrag-studio.svg``, and ``cotrag.ico`` (Windows) and
``cotrag.icns`` (macOS) for ``build.spec``. Qt renders the SVG (no other tool needed).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "resources" / "icons" / "app.svg"
NAME = "cotrag-studio"
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def render(renderer: QSvgRenderer, size: int) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    return image


def main(out: Path) -> int:
    _app = QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(SOURCE))
    if not renderer.isValid():
        print(f"icons.py: cannot read {SOURCE}", file=sys.stderr)
        return 1
    for size in SIZES:
        folder = out / "hicolor" / f"{size}x{size}" / "apps"
        folder.mkdir(parents=True, exist_ok=True)
        if not render(renderer, size).save(str(folder / f"{NAME}.png"), "PNG"):
            print(f"icons.py: could not write the {size}px icon", file=sys.stderr)
            return 1
    scalable = out / "hicolor" / "scalable" / "apps"
    scalable.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SOURCE, scalable / f"{NAME}.svg")
    # Qt's ico writer keeps one image per file, so the Windows icon carries the 256px one.
    for name, fmt, size in (("cotrag.ico", "ICO", 256), ("cotrag.icns", "ICNS", 512)):
        if not render(renderer, size).save(str(out / name), fmt):
            print(f"icons.py: could not write {name}", file=sys.stderr)
            return 1
    print(f"icons in {out}: {len(SIZES)} PNG sizes, SVG, ICO, ICNS")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
