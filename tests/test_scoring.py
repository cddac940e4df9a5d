"""Answers scored on what they say first: the short answer, the whole-answer containment
kept beside it, and the answer's length."""

from __future__ import annotations

import pytest

from core.scoring import answer_words, score_answer, short_answer


@pytest.mark.parametrize(
    ("answer", "short"),
    [
        # Plain prose, citations out.
        (
            "The Brannock ferry leaves Port Idris at 06:40 [1]. It returns at 18:15 on "
            "weekdays [2].",
            "The Brannock ferry leaves Port Idris at 06:40.",
        ),
        (
            "Liquid tin cools the reactor[1][3]. Water is never used.",
            "Liquid tin cools the reactor.",
        ),
        (
            "It is set in `.npmrc` [1, 2]; see the config page.",
            "It is set in .npmrc; see the config page.",
        ),
        # Abbreviations, versions, names with dots and code spans never end a sentence.
        (
            "Use a dist-tag, e.g. `latest` or `next`, to pick the version. Tags are mutable.",
            "Use a dist-tag, e.g. latest or next, to pick the version.",
        ),
        (
            "The flag takes a semver range, i.e. `^1.5.0` matches 1.9. Other ranges differ.",
            "The flag takes a semver range, i.e. ^1.5.0 matches 1.9.",
        ),
        (
            "Set `engines.node` in package.json to >=18.17. npm warns otherwise.",
            "Set engines.node in package.json to >=18.17.",
        ),
        (
            "Run `npm ci`. It deletes node_modules first.",
            "Run npm ci.",
        ),
        (
            "Version 2.3.1 of the lockfile (approx. npm v7 and later) is the default. Older "
            "ones are upgraded.",
            "Version 2.3.1 of the lockfile (approx. npm v7 and later) is the default.",
        ),
        ("See No. 5 in the list. The rest follow.", "See No. 5 in the list."),
        (
            "Logs, caches, etc. live under ~/.npm. Remove them with npm cache clean.",
            "Logs, caches, etc. live under ~/.npm.",
        ),
        ("Does it work offline? Yes, with --offline.", "Does it work offline?"),
        (
            "It runs in the U.S. region only. Elsewhere it is off.",
            "It runs in the U.S. region only.",
        ),
        # Markdown: emphasis, links, a heading first, blank lines first, bullets.
        (
            "**The default registry** is [the public one](https://registry.npmjs.org/). "
            "You can change it.",
            "The default registry is the public one.",
        ),
        (
            "\n\n## Ferry times\n\nThe ferry leaves at **06:40** [1]. A second one leaves at noon.",
            "The ferry leaves at 06:40.",
        ),
        ("Ferry times\n===========\nIt leaves at 06:40. Then at noon.", "It leaves at 06:40."),
        (
            "- Use `--omit=dev` to skip devDependencies [2].\n- Use `--production` on old npm.",
            "Use --omit=dev to skip devDependencies.",
        ),
        ("1. Run `npm login`.\n2. Run `npm publish`.", "Run npm login."),
        (
            "> The cache lives in ~/.npm on POSIX.\n> On Windows it differs.",
            "The cache lives in ~/.npm on POSIX.",
        ),
        # A first sentence that ends in a colon takes the next one with it.
        (
            "To install without devDependencies, run:\n\n```bash\nnpm install --omit=dev\n```\n\n"
            "This is the default in production.",
            "To install without devDependencies, run: npm install --omit=dev",
        ),
        ("The options are:\n- `strict`\n- `loose`", "The options are: strict"),
        # An Answer: line wins over the first sentence.
        (
            "The passages discuss several options [1][2]. They differ in scope.\n\n"
            "Answer: `--save-exact` [2]",
            "--save-exact",
        ),
        ("**Answer:** liquid tin [1]. It is pumped.\nSource: passage 1.", "liquid tin."),
        ("Short answer:\nThe default is 02:00. It can be changed.", "The default is 02:00."),
        # Sentences across soft line breaks, a heading alone, nothing at all.
        (
            "The ferry leaves\nat 06:40 from pier 3. It is\nlate on Sundays.",
            "The ferry leaves at 06:40 from pier 3.",
        ),
        ("# Only a heading", "Only a heading"),
        ("", ""),
        ("   \n\n", ""),
    ],
)
def test_the_short_answer_is_the_answer_line_or_the_first_sentence(answer: str, short: str) -> None:
    assert short_answer(answer) == short


def test_a_rambling_answer_no_longer_wins_by_containing_the_answer_later() -> None:
    rambling = (
        "The documents describe several settings for the npm cache. The cache folder can be "
        "moved with the `cache` option, and `npm cache verify` checks it. The default "
        "location is `~/.npm` on POSIX systems [1]."
    )
    assert score_answer(rambling, ["~/.npm"]) == (False, True)
    assert score_answer("The cache is in `~/.npm` [1]. It is verified.", ["~/.npm"]) == (True, True)
    assert score_answer("The documents do not say.", ["~/.npm"]) == (False, False)
    assert score_answer("", ["~/.npm"]) == (False, False)
    # Case-insensitive, any of the expected strings; Markdown cannot hide the answer.
    assert score_answer("It is **Liquid Tin**.", ["tin", "liquid tin"]) == (True, True)
    assert score_answer("It is **Liquid** tin.", ["liquid tin"]) == (True, False)


def test_answer_words_counts_words_not_citations_or_markup() -> None:
    assert answer_words("") == 0
    assert answer_words("The ferry leaves at 06:40 [1].") == 5
    assert answer_words("- Use `npm ci` [2][3]\n- or **npm install**") == 6
    long = "word " * 150
    assert answer_words(long) == 150
