"""Prompt weighting syntax reads like ComfyUI's CLIPTextEncode.

Expected values come from ComfyUI's documented behaviour of `token_weights` (the examples in
its docstring, issue #4610) and from tracing its parser by hand for the edge cases.
"""

import random

import pytest

from nodes.conditioning.prompt_syntax import EmbeddingRef, TextSegment, parse_prompt, parse_weights


@pytest.mark.parametrize("prompt, expected", [
    ("a cat", [("a cat", 1.0)]),
    ("", []),
    ("(foo)", [("foo", 1.1)]),
    ("(foo)(bar)", [("foo", 1.1), ("bar", 1.1)]),
    ("(foo:2.0)", [("foo", 2.0)]),
    ("((foo))", [("foo", 1.1 * 1.1)]),
    ("(((foo)))", [("foo", 1.1 * 1.1 * 1.1)]),
    ("((foo):1.1)", [("foo", 1.1 * 1.1)]),
    ("(foo:0.0)", [("foo", 0.0)]),
    ("((foo:1.0):0.0)", [("foo", 1.0)]),
    ("a (red:1.3) cat", [("a ", 1.0), ("red", 1.3), (" cat", 1.0)]),
    ("(a (b) c)", [("a ", 1.1), ("b", 1.1 * 1.1), (" c", 1.1)]),
    ("foo ((((lol (cat:666) attack:100)))) baz",
     [("foo ", 1.0), ("lol ", 100.0), ("cat", 666.0), (" attack", 100.0), (" baz", 1.0)]),
    ("foo ((((lol (cat:666) attack):100))) baz",
     [("foo ", 1.0), ("lol ", 100.0 * 1.1), ("cat", 666.0), (" attack", 100.0 * 1.1), (" baz", 1.0)]),
])
def test_parentheses_weights(prompt, expected):
    assert parse_weights(prompt) == expected


def test_an_explicit_weight_replaces_the_enclosing_one_instead_of_multiplying():
    # ComfyUI, unlike A1111 (which would give 1.3 * 1.1 = 1.43).
    assert parse_weights("((word:1.3))") == [("word", 1.3)]
    assert parse_weights("(a (b:0.5) c:2)") == [("a ", 2.0), ("b", 0.5), (" c", 2.0)]


@pytest.mark.parametrize("prompt, expected", [
    ("(a: 1.5 )", [("a", 1.5)]),          # Python's float() accepts surrounding spaces
    ("(a:-1)", [("a", -1.0)]),
    ("(a:1e1)", [("a", 10.0)]),
    ("(a:.5)", [("a", 0.5)]),
    ("(a:1.5:2)", [("a:1.5", 2.0)]),      # the last colon decides
    ("(time: 12:30)", [("time: 12", 30.0)]),  # a quirk users meet: "12:30" reads as weight 30
    ("(a:b)", [("a:b", 1.1)]),            # not a number: the text keeps its colon, the group its 1.1
    ("(a:)", [("a:", 1.1)]),
    ("(:1.2)", [(":1.2", 1.1)]),          # a colon first is not a weight
    ("()", []),
    ("(:)", [(":", 1.1)]),
])
def test_weight_numbers(prompt, expected):
    assert parse_weights(prompt) == expected


@pytest.mark.parametrize("prompt, expected", [
    (r"\(word\)", [("(word)", 1.0)]),
    (r"a \(b\) (c)", [("a (b) ", 1.0), ("c", 1.1)]),
    (r"(\(nested\):1.2)", [("(nested)", 1.2)]),
    (r"(a \) b)", [("a ) b", 1.1)]),
    (r"\\(x)", [("\\(x)", 1.0)]),  # no escaping of the backslash itself: "\\(" is "\" + a literal "("
    (r"a\b \[c\]", [(r"a\b \[c\]", 1.0)]),
])
def test_escapes(prompt, expected):
    assert parse_weights(prompt) == expected


@pytest.mark.parametrize("prompt", ["[word]", "[[word]]", "a [b] c", "[a:b:0.5]", "a BREAK b", "a AND b"])
def test_square_brackets_and_a1111_keywords_are_plain_text(prompt):
    assert parse_weights(prompt) == [(prompt, 1.0)]


@pytest.mark.parametrize("prompt, expected", [
    ("a (b", [("a ", 1.0), ("(b", 1.0)]),
    ("(", [("(", 1.0)]),
    ("((a)", [("(a", 1.1)]),  # the outer pair closes at the only ")", leaving "(a" inside
    ("(a (b:1.5)", [("a ", 1.5), ("(b", 1.5)]),
    ("a)", [("a)", 1.0)]),
    (")", [(")", 1.0)]),
    # A stray ")" leaves the depth below zero: later groups stay plain text...
    ("a) (b) (c)", [("a) (b) (c)", 1.0)]),
    # ...until an extra "(" brings it back to zero.
    ("a) ((b))", [("a) (", 1.0), ("b", 1.1), (")", 1.0)]),
])
def test_unbalanced_parentheses_never_fail(prompt, expected):
    assert parse_weights(prompt) == expected


def test_deep_nesting_does_not_overflow_the_stack():
    depth = 1500  # beyond Python's recursion limit
    pieces = parse_weights("(" * depth + "x" + ")" * depth)
    assert [text for text, _ in pieces] == ["x"]
    assert parse_weights("(" * 20 + "x" + ")" * 20) == [("x", pytest.approx(1.1 ** 20))]


def test_random_prompts_never_raise_and_keep_every_letter():
    rng = random.Random(1234)
    alphabet = "ab (():)\\[]1.5 embedding:\n"
    for _ in range(2000):
        prompt = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        parts = parse_prompt(prompt)
        letters = "".join(p.text if isinstance(p, TextSegment) else p.source for p in parts)
        assert sorted(c for c in letters if c.isalpha()) == sorted(c for c in prompt if c.isalpha())


def test_whitespace_and_newlines_are_kept_in_segments():
    assert parse_weights("a\n(b)\n c") == [("a\n", 1.0), ("b", 1.1), ("\n c", 1.0)]


# --- embedding references -------------------------------------------------------------------

def test_embedding_reference_in_plain_text():
    assert parse_prompt("a photo, embedding:myStyle, of a cat") == [
        TextSegment("a photo, ", 1.0),
        EmbeddingRef(name="myStyle,", weight=1.0, trailing="of a cat", source="embedding:myStyle, of a cat"),
    ]


def test_embedding_reference_at_the_start_and_with_an_extension():
    assert parse_prompt("embedding:style.safetensors cat") == [
        EmbeddingRef(name="style.safetensors", weight=1.0, trailing="cat",
                     source="embedding:style.safetensors cat"),
    ]


def test_embedding_reference_takes_its_groups_weight():
    assert parse_prompt("a (embedding:neg:1.2) b") == [
        TextSegment("a ", 1.0),
        EmbeddingRef(name="neg", weight=1.2, trailing="", source="embedding:neg"),
        TextSegment(" b", 1.0),
    ]


def test_embedding_needs_whitespace_or_the_start_of_a_piece_before_it():
    assert parse_prompt("xembedding:foo") == [TextSegment("xembedding:foo", 1.0)]
    assert parse_prompt("a,embedding:foo") == [TextSegment("a,embedding:foo", 1.0)]
    assert parse_prompt("Embedding:foo") == [TextSegment("Embedding:foo", 1.0)]
    assert parse_prompt("a\tembedding:foo")[1] == EmbeddingRef("foo", 1.0, "", "embedding:foo")
    assert parse_prompt("a\nembedding:foo")[1] == EmbeddingRef("foo", 1.0, "", "embedding:foo")


def test_several_embeddings_in_one_piece():
    assert parse_prompt("embedding:a x embedding:b y") == [
        EmbeddingRef("a", 1.0, "x", "embedding:a x "),
        EmbeddingRef("b", 1.0, "y", "embedding:b y"),
    ]


def test_embedding_name_stops_before_angle_or_square_brackets():
    assert parse_prompt("embedding:style<lora:x:1> cat") == [
        EmbeddingRef("style", 1.0, "<lora:x:1> cat", "embedding:style<lora:x:1> cat")]
    assert parse_prompt("embedding:style[x]") == [EmbeddingRef("style", 1.0, "[x]", "embedding:style[x]")]


def test_embedding_name_with_a_subfolder():
    assert parse_prompt("embedding:sd15/style")[0].name == "sd15/style"


def test_bare_embedding_prefix_is_text():
    assert parse_prompt("a embedding:") == [TextSegment("a ", 1.0), TextSegment("embedding:", 1.0)]
    assert parse_prompt("embedding:  ") == [TextSegment("embedding:  ", 1.0)]


def test_escaped_parentheses_in_an_embedding_trailing_text():
    assert parse_prompt(r"embedding:e \(x\)") == [EmbeddingRef("e", 1.0, "(x)", "embedding:e (x)")]
