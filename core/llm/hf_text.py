"""Text in and out of a Hugging Face tokenizer, for the engines that run one.

The transformers and mlx-lm backends both read a model folder's tokenizer; this
module gives them the llama.cpp backend's text rules: the chat template (with
the same fallbacks), prompts whose special tokens are parsed, appended text
whose special tokens are not, the end-of-generation tokens, and decoding of a
token stream that never shows half a character.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from core.llm.chat_template import CHATML_TEMPLATE, fold_system

END_OF_TURN_MARKERS = (
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end_of_text|>",
    "<|endoftext|>",
    "<end_of_turn>",
    "<|end|>",
    "<EOT>",
)
"""Tokens that end a turn although the config may name only one EOS (llama.cpp's list)."""


class HFText:
    """A loaded Hugging Face tokenizer, used the way the llama.cpp backend uses its vocabulary."""

    def __init__(self, tokenizer: Any, eos_ids: Iterable[int] = ()) -> None:
        self.tokenizer = tokenizer
        self.end_ids = end_of_generation_ids(tokenizer, eos_ids)
        bos = tokenizer.bos_token_id
        self._bos_id: int | None = int(bos) if bos is not None else None
        self._bos_text: str = tokenizer.bos_token or ""
        probe = tokenizer("a", add_special_tokens=True)["input_ids"]
        # Only tokenizers that put BOS in front by themselves get one here.
        self._adds_bos = bool(probe) and self._bos_id is not None and probe[0] == self._bos_id
        self._token_texts: list[str] | None = None

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        import jinja2

        template = self.tokenizer.chat_template or CHATML_TEMPLATE
        try:
            return self._render(messages, template)
        except jinja2.TemplateError:
            pass
        try:
            # The template's raise_exception: usually "system role not supported"
            # (Gemma-style templates); such models take the system text in the user turn.
            return self._render(fold_system(messages), template)
        except jinja2.TemplateError:
            return self._render(messages, CHATML_TEMPLATE)

    def _render(self, messages: list[dict[str, str]], template: Any) -> str:
        return str(
            self.tokenizer.apply_chat_template(
                messages, chat_template=template, tokenize=False, add_generation_prompt=True
            )
        )

    def tokenize_prompt(self, text: str, *, add_bos: bool = True) -> list[int]:
        """Tokens of template text: special tokens such as ``<|im_start|>`` are parsed."""
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        # A template that writes the BOS token itself must not get a second one.
        if add_bos and self._adds_bos and not (self._bos_text and text.startswith(self._bos_text)):
            assert self._bos_id is not None
            ids.insert(0, self._bos_id)
        return ids

    def tokenize_text(self, text: str) -> list[int]:
        """Tokens of untrusted text: ``<|im_start|>`` stays plain characters."""
        encoded = self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)
        return list(encoded["input_ids"])

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize_prompt(text, add_bos=False))

    def detokenizer(self, context: Sequence[int]) -> IncrementalDetokenizer:
        return IncrementalDetokenizer(self.tokenizer, context)

    def is_end_of_generation(self, token: int) -> bool:
        return token in self.end_ids

    def token_texts(self) -> list[str]:
        """Every token's text as it reads after other text ("" for special tokens).

        Decoded behind a plain token, so SentencePiece's word-initial space is kept; a
        token that spells part of a character reads as U+FFFD. Made once (about a
        second for a 50k vocabulary), for grammars applied outside llama.cpp.
        """
        if self._token_texts is None:
            tokenizer = self.tokenizer
            anchor = self.tokenize_text("a")[-1]
            before = self.detokenizer([])._decode([anchor])
            texts = tokenizer.batch_decode(
                [[anchor, token] for token in range(len(tokenizer))],
                skip_special_tokens=True,
                clean_up_tokenization_spaces=False,
            )
            self._token_texts = [
                text[len(before) :] if text.startswith(before) else text for text in texts
            ]
            for token in self.end_ids:
                if token < len(self._token_texts):
                    self._token_texts[token] = ""
        return self._token_texts


def end_of_generation_ids(tokenizer: Any, eos_ids: Iterable[int] = ()) -> frozenset[int]:
    """The configs' EOS ids, the tokenizer's, and the turn-ending tokens it knows."""
    ids = {int(i) for i in eos_ids}
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    added = tokenizer.get_added_vocab()
    for marker in END_OF_TURN_MARKERS:
        if marker in added:
            ids.add(int(added[marker]))
    return frozenset(ids)


def config_eos_ids(*configs: Any) -> set[int]:
    """``eos_token_id`` of model/generation configs (an int, a list or absent)."""
    ids: set[int] = set()
    for config in configs:
        if isinstance(config, dict):
            value = config.get("eos_token_id")
        else:
            value = getattr(config, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return ids


class IncrementalDetokenizer:
    """Text of a growing token list, one token at a time, in whole characters only.

    Each token's text is the difference between decoding a short window of the
    sequence with and without it (the approach of vLLM and TGI), so tokenizers whose
    pieces depend on their neighbours (SentencePiece's leading space, byte-fallback
    tokens that spell half a character) decode as the whole text would. While the
    window ends in an unfinished character (U+FFFD), nothing is returned. Text comes
    out as UTF-8 bytes, as every engine's tokens do (``core.llm.token_loop.Detokenizer``).
    """

    def __init__(self, tokenizer: Any, context: Sequence[int]) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = list(context[-1:])
        self._prefix = 0
        self._read = len(self._ids)

    def _decode(self, ids: Sequence[int]) -> str:
        return str(
            self._tokenizer.decode(
                list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
        )

    def feed(self, token: int) -> bytes:
        """The UTF-8 of the whole characters this token completes (often b"")."""
        self._ids.append(token)
        return self._advance(final=False).encode("utf-8")

    def flush(self) -> bytes:
        """End of stream: whatever is left (an unfinished character becomes U+FFFD)."""
        return self._advance(final=True).encode("utf-8")

    def _advance(self, *, final: bool) -> str:
        if self._read == len(self._ids):
            return ""
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) <= len(before) and not final:
            return ""
        if after.endswith("\ufffd") and not final:
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return after[len(before) :]
