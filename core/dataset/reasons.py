"""Why a candidate example was not kept, in a person's words: a short label for a chart
or a list (the reason's code stays in a tooltip or a log)."""

from __future__ import annotations

REJECTION_LABELS: dict[str, str] = {
    "answer_not_in_source": "answer not in source",
    "answer_in_question": "answer in question",
    "question_length": "question length",
    "answer_length": "answer too long",
    "near_duplicate": "repeats a question",
    "round_trip": "search misses source",
    "bridge_not_in_first": "link not in 1st",
    "bridge_in_question": "question names link",
    "answer_in_first": "answer in 1st passage",
    "one_hop": "one search is enough",
    "round_trip_first_hop": "1st search misses",
    "round_trip_second_hop": "2nd search misses",
    "trace_protocol_error": "trace format slip",
    "trace_missed_gold": "trace missed source",
    "trace_answer": "trace answer wrong",
    "gold_chunk_gone": "source passage gone",
    "answer_not_found": "answer not found",
    "sample_none_kept": "no sampled run kept",
}
"""Short enough for the report's bar labels (150 px); the tooltip holds the sentence."""

REJECTION_SENTENCES: dict[str, str] = {
    "answer_not_in_source": "The answer is not written in the passage the question came from.",
    "answer_in_question": "The question already contains its answer.",
    "question_length": "The question is too short or too long.",
    "answer_length": "The answer is too long for a short fact.",
    "near_duplicate": "A question like this one is in the dataset already.",
    "round_trip": "Searching the question does not find the passage it came from.",
    "bridge_not_in_first": "A two-step question: the linking term is not in the first passage.",
    "bridge_in_question": "A two-step question that names its linking term, so one search "
    "is enough.",
    "answer_in_first": "A two-step question whose answer is already in the first passage.",
    "one_hop": "A two-step question that one search answers: its search ranks the answer's "
    "passage first.",
    "round_trip_first_hop": "A two-step question whose search does not find the first passage.",
    "round_trip_second_hop": "A two-step question whose second search does not find the "
    "answer's passage.",
    "trace_protocol_error": "The written trace broke the search format.",
    "trace_missed_gold": "No search of the written trace found the source passage.",
    "trace_answer": "The written trace's answer lost the right answer.",
    "gold_chunk_gone": "The source passage is no longer in the knowledge base.",
    "answer_not_found": "No passage that searching the question finds contains the answer.",
    "sample_none_kept": "None of the model's own runs was good enough to keep.",
}


def rejection_label(code: str) -> str:
    """A short label for the reason ``code`` (the code itself, spaced, when unknown)."""
    return REJECTION_LABELS.get(code, code.replace("_", " "))


def rejection_tip(code: str) -> str:
    """The reason as a sentence, with its code (for a tooltip)."""
    sentence = REJECTION_SENTENCES.get(code, "")
    return f"{sentence} ({code})" if sentence else code
