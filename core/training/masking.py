"""Token labels from character spans: the loss falls only on what the model wrote.

A dataset row is a chat (system, user, assistant) plus ``train_spans``: the
character ranges of the assistant message the model wrote itself. What the loop
wrote there (``<query_res>`` passages, notes, tags it closed) and the prompt turns
get the label −100, so a tuned model learns to think, search, vet and answer, and
never to recite documents.

The text is rendered with the model's own chat template (the one llama.cpp applies
at inference), tokenized once with offsets, and each token is labelled by where it
starts: a token that starts inside a trained span is trained. No token-id
searching, so a passage that happens to contain ``</query>`` cannot shift a mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IGNORE = -100


class TemplateMismatch(ValueError):
    """The chat template does not render the assistant message verbatim."""


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    prompt_tokens: int
    """Tokens before the assistant message (the part that can never be cut)."""
    text: str
    offsets: list[tuple[int, int]]

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)

    def __len__(self) -> int:
        return len(self.input_ids)


def render(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, int, int, str]:
    """The chat as the model sees it: text, where the last message's content starts and
    ends, and the end-of-turn text that follows it (e.g. ``<|im_end|>``)."""
    prompt = tokenizer.apply_chat_template(
        messages[:-1], tokenize=False, add_generation_prompt=True
    )
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    content = messages[-1]["content"]
    if not full.startswith(prompt) or not full[len(prompt) :].startswith(content):
        raise TemplateMismatch(
            "The model's chat template changes the assistant's text (it does not render it "
            "verbatim after the prompt), so the loss mask cannot be placed: choose a model "
            "whose template appends messages as they are."
        )
    start = len(prompt)
    end = start + len(content)
    tail = full[end:].rstrip()
    return prompt + content + tail, start, end, tail


def encode(
    tokenizer: Any,
    messages: list[dict[str, str]],
    train_spans: list[list[int]] | list[tuple[int, int]],
    *,
    mask_retrieved: bool = True,
) -> Encoded:
    """Token ids and labels of one row (no truncation: the caller decides)."""
    text, start, end, tail = render(tokenizer, messages)
    content_len = end - start
    if mask_retrieved:
        spans = [(max(0, int(a)), min(content_len, int(b))) for a, b in train_spans]
        spans = [(a, b) for a, b in spans if b > a]
    else:
        spans = [(0, content_len)]
    ranges = [(start + a, start + b) for a, b in sorted(spans)]
    # The end-of-turn marker is the model's to write when it wrote the message's end.
    if tail and spans and max(b for _, b in spans) >= content_len:
        ranges.append((end, end + len(tail)))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets: list[tuple[int, int]] = [(int(a), int(b)) for a, b in enc["offset_mapping"]]
    labels = [IGNORE] * len(ids)
    prompt_tokens = len(ids)
    r = 0
    for i, (a, b) in enumerate(offsets):
        if a >= start and prompt_tokens == len(ids):
            prompt_tokens = i
        while r < len(ranges) and ranges[r][1] <= a:
            r += 1
        if r < len(ranges) and ranges[r][0] <= a < ranges[r][1] and b > a:
            labels[i] = ids[i]
    return Encoded(ids, labels, prompt_tokens, text, offsets)
