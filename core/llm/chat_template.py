"""Chat template pieces every engine shares: the ChatML fallback and folding the system turn.

Imports nothing from the engines, so each of them (and the Hugging Face text helpers)
can use it.
"""

from __future__ import annotations

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""Used when a model carries no chat template; the bundled SmolLM2 speaks ChatML."""


def fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The messages with the system text moved into the first user turn, for templates
    that refuse a system role (Gemma-style)."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if system and rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    elif system:
        rest.insert(0, {"role": "user", "content": system})
    return rest
