"""A tab widget whose pages build their content the first time they are shown.

The window opens with only the page it shows; the others (their modules, widgets and
first reads of the data folder) cost nothing until the user opens them. A page is a
thin holder; ``setCurrentWidget``, ``indexOf``, ``currentWidget`` and ``widget`` take
and give the content itself, as a plain ``QTabWidget`` does with its pages.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QTabWidget, QVBoxLayout, QWidget

Factory = Callable[[QWidget], QWidget]
"""Builds a page's content with the holder as its parent."""


class _Holder(QWidget):
    def __init__(self, key: str, factory: Factory, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.factory = factory
        self.content: QWidget | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)


class LazyTabs(QTabWidget):
    """Pages added with :meth:`add_lazy`; none is built before :meth:`start`."""

    built = Signal(str, QWidget)
    """A page's key and its content, right after the content was built."""
    shown = Signal(str, bool)
    """A page became the current one (after :meth:`start`): its key, and whether its
    content was built just now to be shown."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._holders: dict[str, _Holder] = {}
        self._started = False
        self.currentChanged.connect(self._on_current_changed)

    def add_lazy(self, key: str, factory: Factory, icon: QIcon, label: str) -> None:
        holder = _Holder(key, factory, self)
        self._holders[key] = holder
        self.addTab(holder, icon, label)

    def start(self) -> None:
        """From now on the page shown is built (the current one at once)."""
        self._started = True
        self._on_current_changed(self.currentIndex())

    def content(self, key: str) -> QWidget:
        """The page's content, built now if it was not yet."""
        holder = self._holders[key]
        if holder.content is None:
            holder.content = holder.factory(holder)
            layout = holder.layout()
            assert layout is not None
            layout.addWidget(holder.content)
            self.built.emit(key, holder.content)
        return holder.content

    def build_all(self) -> None:
        """Build every page now (the window then has the size its widest page needs)."""
        for key in self._holders:
            self.content(key)

    def built_content(self, key: str) -> QWidget | None:
        """The page's content if it was built, else None (builds nothing)."""
        return self._holders[key].content

    def built_contents(self) -> list[QWidget]:
        return [h.content for h in self._holders.values() if h.content is not None]

    def key_at(self, index: int) -> str:
        page = super().widget(index)
        return page.key if isinstance(page, _Holder) else ""

    @Slot(int)
    def _on_current_changed(self, index: int) -> None:
        key = self.key_at(index)
        if self._started and key:
            fresh = self.built_content(key) is None
            self.content(key)
            self.shown.emit(key, fresh)

    # -- pages as their content, as a plain QTabWidget has them ---------------------
    def _page(self, widget: QWidget) -> QWidget:
        for holder in self._holders.values():
            if widget is holder.content:
                return holder
        return widget

    def setCurrentWidget(self, widget: QWidget, /) -> None:
        super().setCurrentWidget(self._page(widget))

    def indexOf(self, widget: QWidget, /) -> int:
        return super().indexOf(self._page(widget))

    def widget(self, index: int, /) -> QWidget | None:
        page = super().widget(index)
        return None if page is None else self._content_of(page)

    @staticmethod
    def _content_of(page: QWidget) -> QWidget:
        if isinstance(page, _Holder) and page.content is not None:
            return page.content
        return page

    def currentWidget(self) -> QWidget:
        page = super().currentWidget()
        return self._content_of(page)
