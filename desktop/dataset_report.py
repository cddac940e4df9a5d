"""The Dataset tab's quality report: how many examples and from where, why candidates were
rejected, who wrote the questions and traces, rounds and trace lengths, as bar charts; and,
when the rewrite step ran, how many questions it rewrote and how far their wording moved."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QLabel, QScrollArea, QVBoxLayout, QWidget

from core.dataset.reasons import rejection_label, rejection_tip
from core.dataset.rewrite import REASON_LABELS
from desktop.bar_chart import BarChart


class QualityReport(QScrollArea):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        inner = QWidget(self)
        rcol = QVBoxLayout(inner)
        rcol.setContentsMargins(10, 10, 10, 10)
        self.summary = QLabel("", inner)
        self.summary.setWordWrap(True)
        rcol.addWidget(self.summary)
        self.charts = {
            "kinds": BarChart("Kinds", "#3b82f6", inner),
            "rejections": BarChart("Rejected, by reason", "#f97316", inner),
            "origins": BarChart("Questions written by · traces", "#8b5cf6", inner),
            "rounds": BarChart("Search rounds per trace", "#10b981", inner),
            "trace_tokens": BarChart("Trace length (≈tokens)", "#64748b", inner),
            "overlap": BarChart(
                "Questions' words found in the source sentence: before → after rewriting",
                "#0ea5e9",
                inner,
            ),
        }
        for chart in self.charts.values():
            rcol.addWidget(chart)
            rcol.addSpacing(6)
        rcol.addStretch(1)
        self.setWidget(inner)

    def show_report(self, report: dict[str, Any]) -> None:
        splits = report.get("splits", {})
        self.summary.setText(
            f"<b>{report['examples']}</b> examples ({splits.get('train', 0)} train, "
            f"{splits.get('validation', 0)} validation) from {report['documents']} documents. "
            f"<b>{report['rejected']}</b> candidates rejected; acceptance "
            f"{report['acceptance_rate']:.0%}.{sampling_sentence(report.get('sampling') or {})}"
        )
        self.charts["kinds"].set_values(report.get("kinds", {}))
        rejected = sorted(report.get("rejections", {}).items(), key=lambda kv: -kv[1])
        self.charts["rejections"].set_values(
            [(rejection_label(code), n) for code, n in rejected],
            [rejection_tip(code) for code, _ in rejected],
        )
        origins = [(f"questions: {k}", v) for k, v in report.get("question_origins", {}).items()]
        origins += [(f"traces: {k}", v) for k, v in report.get("trace_origins", {}).items()]
        self.charts["origins"].set_values(origins)
        self.charts["rounds"].set_values(
            [
                (f"{k} round{'s' if str(k) != '1' else ''}", v)
                for k, v in report.get("rounds", {}).items()
            ]
        )
        self.charts["trace_tokens"].set_values(report.get("trace_tokens", {}))
        self._show_rewrite(report.get("rewrite"))

    def _show_rewrite(self, figures: dict[str, Any] | None) -> None:
        """The rewrite step's figures (the chart is hidden when the step did not run)."""
        chart = self.charts["overlap"]
        chart.setVisible(bool(figures))
        if not figures:
            return
        reasons = ", ".join(
            f"{REASON_LABELS.get(k, k)} {v}" for k, v in figures.get("reasons", {}).items()
        )
        self.summary.setText(
            self.summary.text()
            + f"<br><b>{figures['rewritten']}</b> of {figures['tried']} questions rewritten "
            "in the writer's own words"
            + (f" (not kept: {reasons})" if reasons else "")
            + f"; word overlap with the source sentence, median "
            f"{figures['overlap_median_before']:.2f} before → "
            f"{figures['overlap_median_after']:.2f} after."
        )
        before = [(f"before {k}", v) for k, v in figures.get("overlap_before", {}).items()]
        after = [(f"after {k}", v) for k, v in figures.get("overlap_after", {}).items()]
        chart.set_values(before + after)


def sampling_sentence(sampling: dict[str, Any]) -> str:
    """What the model's own runs gave (rejection sampling), or nothing when none ran."""
    if not sampling.get("questions"):
        return ""
    return (
        f"<br>The model's own runs: <b>{sampling.get('kept', 0)}</b> of "
        f"{sampling['questions']} questions kept a sampled trace (keep rate "
        f"{sampling.get('keep_rate', 0):.0%}; {sampling.get('runs_kept', 0)}/"
        f"{sampling.get('runs', 0)} runs), {sampling.get('fallback', 0)} kept their "
        f"constructed trace, {sampling.get('dropped', 0)} dropped."
    )
