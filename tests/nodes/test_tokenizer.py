"""The shipped CLIP tokenizer gives the same ids as the original CLIP BPE algorithm.

The reference below is written straight from the algorithm of OpenAI's `simple_tokenizer`:
clean whitespace, lowercase, split with CLIP's pattern, map UTF-8 bytes to printable symbols,
then merge adjacent symbols by merge rank. It builds its own symbol table from `merges.txt`,
so `vocab.json` is checked too. Like the Hugging Face tokenizer that ComfyUI and diffusers use,
it applies Unicode NFC (what ftfy's cleaning mostly amounts to) and leaves HTML entities alone.
"""

from __future__ import annotations

import json
import unicodedata

import pytest
import regex

from nodes.models.clip_tokenizer import END_TOKEN, OPEN_CLIP_PAD_TOKEN, TOKENIZER_DIR, VOCAB_SIZE, load_clip_tokenizer

PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE)


def byte_symbols() -> dict[int, str]:
    """Each byte as a printable character: printable Latin-1 bytes stand for themselves, the rest
    are shifted above 255, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols = {b: chr(b) for b in printable}
    for shift, b in enumerate(b for b in range(256) if b not in symbols):
        symbols[b] = chr(256 + shift)
    return symbols


class ReferenceBPE:
    """The original CLIP tokenizer's algorithm, slow and plain."""

    def __init__(self, merges: list[tuple[str, str]]) -> None:
        self.byte_symbols = byte_symbols()
        base = list(self.byte_symbols.values())
        tokens = base + [s + "</w>" for s in base] + ["".join(m) for m in merges]
        tokens += ["<|startoftext|>", "<|endoftext|>"]
        self.ids = {t: i for i, t in enumerate(tokens)}
        self.ranks = {m: i for i, m in enumerate(merges)}

    def bpe(self, word: str) -> list[str]:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = {(a, b) for a, b in zip(parts, parts[1:])}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts

    def encode(self, text: str) -> list[int]:
        text = unicodedata.normalize("NFC", text)
        text = regex.sub(r"\s+", " ", text).strip()
        # Character by character, as the Hugging Face normalizer does: Python's str.lower() would
        # also apply the Greek final-sigma rule, which the tokenizer users actually run never did.
        text = "".join(c.lower() for c in text)
        ids = []
        for piece in PATTERN.findall(text):
            if piece in ("<|startoftext|>", "<|endoftext|>"):
                ids.append(self.ids[piece])
                continue
            symbols = "".join(self.byte_symbols[b] for b in piece.encode("utf-8"))
            ids.extend(self.ids[t] for t in self.bpe(symbols))
        return ids


PROMPTS = [
    "a photo of an astronaut riding a horse on mars",
    "A PHOTO OF AN ASTRONAUT RIDING A HORSE",
    "masterpiece, best quality, 1girl, solo, long hair, looking at viewer, smile",
    "(masterpiece:1.2), (best quality:1.3), ((ultra detailed)), [blurry], [[lowres]]",
    "(a cat:0.8) and (a dog:1.25) in a (field of flowers:1.1)",
    r"\(escaped parentheses\) and \[escaped brackets\]",
    "embedding:EasyNegative, embedding:bad_prompt_version2",
    "portrait of a woman, 85mm, f/1.8, bokeh, 8k uhd, dslr, film grain, Fujifilm XT3",
    "1234567890 3.14159 1,000,000 -42 +7 1e-5 0x1F",
    "it's what you've done, they're here, I'm sure we'll see, he'd go, don't",
    "IT'S WHAT YOU'VE DONE, THEY'RE HERE",
    "hello!!! what??? wow... ---- ==== **** ~~~~",
    "café, naïve, résumé, crème brûlée, jalapeño, Zürich, São Paulo",
    "東京の夜景, 猫, ネオン, 漢字テスト",
    "Москва зимой, снег, старый город",
    "Αθήνα, ελληνικό φως, θάλασσα",
    "مرحبا بالعالم، صورة جميلة",
    "שלום עולם",
    "हिन्दी पाठ, सुंदर चित्र",
    "emoji party 😀🎉🔥🐱‍👤 👍🏽",
    "tabs\tand\nnewlines\r\nand   multiple    spaces",
    "   leading and trailing spaces   ",
    "",
    "a",
    "!",
    "<|startoftext|> inline special tokens <|endoftext|>",
    "snake_case_words and kebab-case-words and CamelCaseWords",
    "email@example.com https://example.com/path?query=1&x=2#frag",
    "c++ c# f# .net node.js vue.js",
    "$100 €50 £20 ¥1000 ₹500 ¢",
    "100% 50°C 3/4 ½ ¼ ² ³ µm Ω",
    "™ © ® § ¶ † ‡ • … ‰",
    "quotes: \"double\" 'single' “curly” ‘curly’ «guillemets» „low“",
    "dashes: en–dash em—dash minus − hyphen-ated",
    "math: a+b=c, x^2, y_1, a<b>c, |x|, {set}, [list], (tuple)",
    "a very very very very very very very very very very very very very long prompt",
    ", ".join(["highly detailed"] * 40),
    " ".join(f"word{i}" for i in range(120)),
    "landscape, mountains, lake, sunset, volumetric lighting, octane render, trending on artstation",
    "ﬁne ligature ﬂow, fullwidth ＡＢＣ１２３, halfwidth ｶﾀｶﾅ",
    "combining: e\u0301 a\u0308 o\u0302 (should compose under NFC)",
    "Zero\u200bwidth\u200cjoiners\u200d and soft\u00adhyphen",
    "İstanbul, ß, ẞ, ǅ, ΣΊΣΥΦΟΣ",
    "weird spacing:\u00a0nbsp\u2003emspace\u3000ideographic",
    "score_9, score_8_up, score_7_up, source_anime, rating_safe",
    "BREAK a second chunk BREAK a third chunk",
    "(((((nested))))) [[[[[nested]]]]] {{{{{nested}}}}}",
    "lora:add_detail:0.5 <lora:style:1> <hypernet:foo:0.3>",
    "negative: worst quality, low quality, normal quality, lowres, bad anatomy, bad hands, jpeg artifacts",
    "ALL CAPS SHOUTING WITH NUMBERS 2024 AND SYMBOLS !@#$%^&*()",
    "mIxEd CaSe TeXt WiTh RaNdOm CaPiTaLs",
    "unicode digits: ٣ ٤ ٥ ০ ১ ২ 四 五",
    "control chars \x01\x02\x7f kept as bytes",
    "pneumonoultramicroscopicsilicovolcanoconiosis supercalifragilisticexpialidocious",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
]


@pytest.fixture(scope="module")
def reference() -> ReferenceBPE:
    lines = (TOKENIZER_DIR / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("#version")
    return ReferenceBPE([tuple(line.split(" ")) for line in lines[1:]])


def test_vocabulary_is_built_from_the_merges_like_the_reference() -> None:
    vocab = json.loads((TOKENIZER_DIR / "vocab.json").read_text(encoding="utf-8"))
    merges = (TOKENIZER_DIR / "merges.txt").read_text(encoding="utf-8").splitlines()[1:]
    assert len(merges) == 48894
    assert len(vocab) == VOCAB_SIZE
    symbols = list(byte_symbols().values())
    assert [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])] == (
        symbols + [s + "</w>" for s in symbols] + [m.replace(" ", "") for m in merges]
        + ["<|startoftext|>", "<|endoftext|>"])


def test_loads_offline_with_the_clip_special_tokens() -> None:
    tok = load_clip_tokenizer()
    assert len(tok) == VOCAB_SIZE
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (49406, 49407, 49407)
    assert tok.model_max_length == 77
    assert load_clip_tokenizer(OPEN_CLIP_PAD_TOKEN).pad_token_id == 0
    assert load_clip_tokenizer(END_TOKEN).pad_token_id == 49407


@pytest.fixture(scope="module")
def tokenizer():
    return load_clip_tokenizer()


@pytest.mark.parametrize("prompt", PROMPTS)
def test_ids_match_the_reference_bpe(reference: ReferenceBPE, tokenizer, prompt: str) -> None:
    ids = tokenizer(prompt, truncation=False).input_ids
    assert ids == [49406, *reference.encode(prompt), 49407]


def test_corpus_is_varied_enough(tokenizer) -> None:
    assert len(PROMPTS) >= 50
    assert any(len(tokenizer(p, truncation=False).input_ids) > 77 for p in PROMPTS)
