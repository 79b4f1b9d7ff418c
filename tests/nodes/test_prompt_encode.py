"""Prompts become ComfyUI's token chunks and conditioning tensors.

Tiny random CLIP text encoders (the real 49,408-token vocabulary, 32-wide, 2 layers) stand in
for the real ones; every expectation is computed by hand from the encoder's own forward pass.
"""

import logging
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from nodes.conditioning import (
    SD1_CLIP_L,
    SD2_CLIP_H,
    SDXL_CLIP_G,
    SDXL_CLIP_L,
    EmbeddingLibrary,
    encode_prompt,
    encode_sdxl,
    encode_with_checkpoint,
    tokenize_prompt,
)
from nodes.models.clip_tokenizer import OPEN_CLIP_PAD_TOKEN, load_clip_tokenizer

START, END = 49406, 49407


def tiny_config(hidden_size=32, **kw):
    return CLIPTextConfig(vocab_size=49408, hidden_size=hidden_size, intermediate_size=37, num_hidden_layers=2,
                          num_attention_heads=4, max_position_embeddings=77, **kw)


@pytest.fixture(scope="module")
def clip_l():
    torch.manual_seed(0)
    return CLIPTextModel(tiny_config()).eval()


@pytest.fixture(scope="module")
def clip_g():
    torch.manual_seed(1)
    return CLIPTextModelWithProjection(tiny_config(hidden_size=48, projection_dim=40)).eval()


@pytest.fixture(scope="module")
def tok():
    return load_clip_tokenizer()


@pytest.fixture(scope="module")
def tok_open():
    return load_clip_tokenizer(OPEN_CLIP_PAD_TOKEN)


def ids_of(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def run(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), output_hidden_states=True)


def words(n):
    """`n` one-token words."""
    return " ".join(["cat"] * n)


# --- token chunks ----------------------------------------------------------------------------

def test_a_short_prompt_is_one_chunk_padded_with_the_end_token(tok):
    tokenized = tokenize_prompt("a photo of a cat", tok)
    expected = tok("a photo of a cat", padding="max_length", max_length=77)["input_ids"]
    assert len(tokenized.chunks) == 1
    assert tokenized.chunks[0].ids == expected
    assert tokenized.chunks[0].weights == [1.0] * 77
    assert expected[-1] == END


def test_open_clip_pads_with_token_zero(tok_open):
    chunk = tokenize_prompt("a cat", tok_open).chunks[0]
    body = ids_of(tok_open, "a cat")
    assert chunk.ids == [START, *body, END] + [0] * (77 - len(body) - 2)


def test_the_empty_prompt(tok):
    assert tokenize_prompt("", tok).chunks[0].ids == [START, END] + [END] * 75


def test_weights_follow_their_tokens(tok):
    chunk = tokenize_prompt("a (red:1.5) ((cat))", tok).chunks[0]
    assert chunk.ids[:5] == [START, *ids_of(tok, "a"), *ids_of(tok, "red"), *ids_of(tok, "cat"), END]
    assert chunk.weights[:5] == [1.0, 1.0, 1.5, pytest.approx(1.21), 1.0]


def test_75_tokens_fit_one_chunk_and_76_need_two(tok):
    assert len(tokenize_prompt(words(75), tok).chunks) == 1
    two = tokenize_prompt(words(76), tok).chunks
    cat = ids_of(tok, "cat")[0]
    assert two[0].ids == [START] + [cat] * 75 + [END]
    assert two[1].ids == [START, cat, END] + [END] * 74


def test_a_long_prompt_with_one_weight_is_cut_at_exactly_75_tokens(tok):
    text = "a very detailed painting of " * 12  # one piece, well over 75 tokens, multi-token words
    body = ids_of(tok, text)
    chunks = tokenize_prompt(text, tok).chunks
    assert len(chunks) == -(-len(body) // 75)
    assert all(len(c.ids) == 77 and c.ids[0] == START for c in chunks)
    assert [t for c in chunks for t in c.ids[1:76]][:len(body)] == body
    assert chunks[0].ids[76] == END


def test_a_short_weighted_piece_that_does_not_fit_moves_whole_to_the_next_chunk(tok):
    # 73 tokens, then a 4-token group: 77 > 75, and a group under 8 tokens is never split.
    text = words(73) + " (big red fluffy dog:1.2)"
    group = ids_of(tok, "big red fluffy dog")
    assert len(group) == 4
    first, second = tokenize_prompt(text, tok).chunks
    assert first.ids[74:] == [END, END, END]           # closed early, padded
    assert second.ids[:6] == [START, *group, END]
    assert second.weights[1:5] == [1.2] * 4


def test_a_long_weighted_piece_is_split_across_chunks(tok):
    text = words(70) + " (one two three four five six seven eight nine ten:1.2)"
    group = ids_of(tok, "one two three four five six seven eight nine ten")
    assert len(group) == 10
    first, second = tokenize_prompt(text, tok).chunks
    assert first.ids[71:76] == group[:5] and first.ids[76] == END
    assert first.weights[71:76] == [1.2] * 5
    assert second.ids[1:7] == [*group[5:], END]


def test_special_tokens_weigh_one(tok):
    chunk = tokenize_prompt("(cat:3)", tok).chunks[0]
    assert chunk.weights[0] == 1.0 and chunk.weights[1] == 3.0 and set(chunk.weights[2:]) == {1.0}


# --- encoding --------------------------------------------------------------------------------

def test_no_weights_gives_exactly_the_encoder_output(clip_l, tok):
    text = "a photo of a cat on a mat"
    cond, pooled = encode_prompt(text, clip_l, tok)
    out = run(clip_l, tok(text, padding="max_length", max_length=77)["input_ids"])
    assert cond.shape == (1, 77, 32) and cond.dtype == torch.float32
    assert torch.equal(cond, out.last_hidden_state)
    assert torch.equal(pooled, out.pooler_output)


def test_a_weight_applies_comfyuis_formula_against_the_empty_prompt(clip_l, tok):
    text = "a (cat:1.5) on a ((mat))"
    chunk = tokenize_prompt(text, tok).chunks[0]
    z = run(clip_l, chunk.ids).last_hidden_state[0]
    z_empty = run(clip_l, [START, END] + [END] * 75).last_hidden_state[0]
    expected = z.clone()
    for j, w in enumerate(chunk.weights):
        if w != 1.0:
            expected[j] = (z[j] - z_empty[j]) * w + z_empty[j]
    cond, pooled = encode_prompt(text, clip_l, tok)
    assert torch.allclose(cond[0], expected, atol=1e-5, rtol=0)
    assert not torch.allclose(cond[0], z, atol=1e-3)
    unweighted = [j for j, w in enumerate(chunk.weights) if w == 1.0]
    assert torch.allclose(cond[0, unweighted], z[unweighted], atol=1e-5, rtol=0)
    # The pooled output is not weighted.
    assert torch.allclose(pooled[0], run(clip_l, chunk.ids).pooler_output[0], atol=1e-5)


def test_weight_zero_gives_the_empty_prompts_output_at_that_position(clip_l, tok):
    cond, _ = encode_prompt("a (cat:0) b", clip_l, tok)
    z_empty = run(clip_l, [START, END] + [END] * 75).last_hidden_state[0]
    assert torch.allclose(cond[0, 2], z_empty[2], atol=1e-5)


def test_long_prompts_concatenate_their_chunks(clip_l, tok):
    cond, pooled = encode_prompt(words(100), clip_l, tok)
    chunks = tokenize_prompt(words(100), tok).chunks
    assert cond.shape == (1, 154, 32)
    for k, chunk in enumerate(chunks):
        assert torch.allclose(cond[0, 77 * k:77 * (k + 1)], run(clip_l, chunk.ids).last_hidden_state[0], atol=1e-5)
    assert torch.allclose(pooled, run(clip_l, chunks[0].ids).pooler_output, atol=1e-5)


@pytest.mark.parametrize("recipe, layer_idx, expected", [
    (SD1_CLIP_L, None, "last"),
    (SD1_CLIP_L, -1, "last"),
    (SD1_CLIP_L, -2, "normed:-2"),        # SD1 applies the final norm to an earlier layer too
    (SD1_CLIP_L, -3, "last"),             # beyond this 2-layer encoder's depth: the last layer
    (SD1_CLIP_L, -24, "last"),
    (SD1_CLIP_L, 0, "normed:1"),          # a non-negative index counts layers from the first
    (SDXL_CLIP_L, None, "raw:-2"),        # SDXL: penultimate by default, never normed
    (SDXL_CLIP_L, -1, "raw:-1"),          # ComfyUI's CLIPSetLastLayer -1 on SDXL: last layer, un-normed
    (SDXL_CLIP_L, -5, "last"),
    (SD2_CLIP_H, None, "last"),           # SD2 modules lack the unused 24th layer: its -2 is their last
    (SD2_CLIP_H, -2, "last"),
    (SD2_CLIP_H, -3, "normed:-2"),
])
def test_layer_idx_selects_the_hidden_state(clip_l, tok, recipe, layer_idx, expected):
    text = "a photo of a cat"
    out = run(clip_l, tok(text, padding="max_length", max_length=77)["input_ids"])
    kind, _, index = expected.partition(":")
    if kind == "last":
        want = out.last_hidden_state
    elif kind == "raw":
        want = out.hidden_states[int(index)]
    else:
        want = clip_l.final_layer_norm(out.hidden_states[int(index)])
    cond, pooled = encode_prompt(text, clip_l, tok, layer_idx=layer_idx, recipe=recipe)
    assert torch.allclose(cond, want, atol=1e-6, rtol=0)
    assert torch.allclose(pooled, out.pooler_output, atol=1e-6)  # whatever the layer


def test_sd2_layer_missing_from_the_module_warns(clip_l, tok, caplog):
    with caplog.at_level(logging.WARNING):
        cond, _ = encode_prompt("a cat", clip_l, tok, layer_idx=-1, recipe=SD2_CLIP_H)
    assert "not in the loaded text encoder" in caplog.text
    assert torch.allclose(cond, encode_prompt("a cat", clip_l, tok, recipe=SD2_CLIP_H)[0])


def test_projection_encoders_pool_through_the_projection(clip_g, tok_open):
    text = "a photo of a cat"
    cond, pooled = encode_prompt(text, clip_g, tok_open, recipe=SDXL_CLIP_G)
    ids = tok_open(text, padding="max_length", max_length=77)["input_ids"]
    assert ids[-1] == 0
    out = run(clip_g, ids)
    assert torch.allclose(cond, out.hidden_states[-2], atol=1e-6)
    assert pooled.shape == (1, 40)
    assert torch.allclose(pooled, out.text_embeds, atol=1e-6)


def test_sdxl_concatenates_clip_l_and_clip_g_per_token(clip_l, clip_g, tok, tok_open):
    text = "a (red:1.1) cat, " * 20  # two chunks
    cond, pooled = encode_sdxl(text, clip_l, clip_g, tokenizer_l=tok, tokenizer_g=tok_open)
    cond_l, _ = encode_prompt(text, clip_l, tok, recipe=SDXL_CLIP_L)
    cond_g, pooled_g = encode_prompt(text, clip_g, tok_open, recipe=SDXL_CLIP_G)
    assert cond.shape == (1, 154, 32 + 48)
    assert torch.equal(cond[..., :32], cond_l) and torch.equal(cond[..., 32:], cond_g)
    assert torch.equal(pooled, pooled_g)
    # The shipped tokenizers are the default ones, with the right padding each.
    default_cond, _ = encode_sdxl(text, clip_l, clip_g)
    assert torch.equal(default_cond, cond)


def test_encode_with_checkpoint_picks_the_familys_recipe(clip_l, clip_g, tok, tok_open):
    sd15 = SimpleNamespace(family=SimpleNamespace(name="sd15", config_dir="sd15"),
                           text_encoders=[clip_l], tokenizers=[tok])
    sdxl = SimpleNamespace(family=SimpleNamespace(name="sdxl_base", config_dir="sdxl"),
                           text_encoders=[clip_l, clip_g], tokenizers=[tok, tok_open])
    assert torch.equal(encode_with_checkpoint("a cat", sd15)[0], encode_prompt("a cat", clip_l, tok)[0])
    assert torch.equal(encode_with_checkpoint("a cat", sdxl, layer_idx=-1)[0],
                       encode_sdxl("a cat", clip_l, clip_g, tokenizer_l=tok, tokenizer_g=tok_open, layer_idx=-1)[0])


# --- textual-inversion embeddings ------------------------------------------------------------

def token_vectors(model, tokenizer, text):
    """The token embeddings of `text`: an "embedding" that must encode exactly like that text."""
    return model.get_input_embeddings().weight[ids_of(tokenizer, text)].detach().clone()


def test_an_embedding_file_inserts_its_vectors(tmp_path, clip_l, tok):
    save_file({"emb_params": token_vectors(clip_l, tok, "red fluffy")}, tmp_path / "style.safetensors")
    tokenized = tokenize_prompt("a embedding:style dog", tok, embeddings=EmbeddingLibrary(tmp_path, width=32))
    chunk = tokenized.chunks[0]
    assert sorted(chunk.vectors) == [2, 3] and chunk.ids[4] == ids_of(tok, "dog")[0]
    cond, pooled = encode_prompt("a embedding:style dog", clip_l, tok, embeddings_dir=tmp_path)
    plain, plain_pooled = encode_prompt("a red fluffy dog", clip_l, tok)
    assert torch.allclose(cond, plain, atol=1e-6) and torch.allclose(pooled, plain_pooled, atol=1e-6)


def test_a1111_pt_files_and_names_with_extension_or_subfolder(tmp_path, clip_l, tok):
    (tmp_path / "sub").mkdir()
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": token_vectors(clip_l, tok, "red")},
                "name": "redness", "step": 100}, tmp_path / "sub" / "redness.pt")
    plain, _ = encode_prompt("a red dog", clip_l, tok)
    for reference in ("embedding:redness", "embedding:redness.pt", "embedding:sub/redness"):
        cond, _ = encode_prompt(f"a {reference} dog", clip_l, tok, embeddings_dir=tmp_path)
        assert torch.allclose(cond, plain, atol=1e-6), reference


def test_embedding_vectors_carry_the_weight_of_their_group(tmp_path, clip_l, tok):
    save_file({"emb_params": token_vectors(clip_l, tok, "red")}, tmp_path / "e.safetensors")
    tokenized = tokenize_prompt("a (embedding:e:1.4) dog", tok, embeddings=EmbeddingLibrary(tmp_path, width=32))
    assert tokenized.chunks[0].weights[:4] == [1.0, 1.0, 1.4, 1.0]
    cond, _ = encode_prompt("a (embedding:e:1.4) dog", clip_l, tok, embeddings_dir=tmp_path)
    assert torch.allclose(cond, encode_prompt("a (red:1.4) dog", clip_l, tok)[0], atol=1e-6)


def test_sdxl_embedding_files_give_each_encoder_its_own_vectors(tmp_path, clip_l, clip_g, tok, tok_open):
    save_file({"clip_l": token_vectors(clip_l, tok, "red"), "clip_g": token_vectors(clip_g, tok_open, "blue")},
              tmp_path / "x.safetensors")
    cond, _ = encode_sdxl("a embedding:x dog", clip_l, clip_g, embeddings_dir=tmp_path)
    red, _ = encode_prompt("a red dog", clip_l, tok, recipe=SDXL_CLIP_L)
    blue, _ = encode_prompt("a blue dog", clip_g, tok_open, recipe=SDXL_CLIP_G)
    assert torch.allclose(cond, torch.cat([red, blue], dim=-1), atol=1e-6)


def test_an_embedding_of_the_wrong_width_is_left_out_with_a_warning(tmp_path, clip_l, tok, caplog):
    save_file({"emb_params": torch.randn(2, 48)}, tmp_path / "wide.safetensors")
    with caplog.at_level(logging.WARNING):
        cond, _ = encode_prompt("a embedding:wide dog", clip_l, tok, embeddings_dir=tmp_path)
    assert "do not fit" in caplog.text
    # As in ComfyUI: the positions close up and padding fills the end of the chunk.
    assert torch.allclose(cond, encode_prompt("a dog", clip_l, tok)[0], atol=1e-6)


def test_a_missing_embedding_warns_and_is_left_out(tmp_path, clip_l, tok, caplog):
    with caplog.at_level(logging.WARNING):
        tokenized = tokenize_prompt("a embedding:nothere dog", tok, embeddings=EmbeddingLibrary(tmp_path))
    assert "embedding:nothere does not exist" in caplog.text
    assert tokenized.missing_embeddings == ["nothere"]
    assert tokenized.chunks[0].ids == tokenize_prompt("a dog", tok).chunks[0].ids
    cond, _ = encode_prompt("a embedding:nothere dog", clip_l, tok, embeddings_dir=tmp_path)
    assert torch.equal(cond, encode_prompt("a dog", clip_l, tok)[0])


def test_a_trailing_comma_is_retried_without_it_and_kept_as_text(tmp_path, clip_l, tok):
    save_file({"emb_params": token_vectors(clip_l, tok, "red")}, tmp_path / "e.safetensors")
    chunk = tokenize_prompt("a embedding:e, dog", tok, embeddings=EmbeddingLibrary(tmp_path, width=32)).chunks[0]
    placeholder = END  # the pad id stands where the vector goes
    assert chunk.ids[:6] == [START, *ids_of(tok, "a"), placeholder, *ids_of(tok, ","), *ids_of(tok, "dog"), END]
    assert sorted(chunk.vectors) == [2]
    cond, _ = encode_prompt("a embedding:e, dog", clip_l, tok, embeddings_dir=tmp_path)
    assert torch.allclose(cond, encode_prompt("a red, dog", clip_l, tok)[0], atol=1e-6)


def test_without_an_embeddings_folder_references_are_text(clip_l, tok):
    tokenized = tokenize_prompt("a embedding:style dog", tok)
    assert tokenized.chunks[0].ids == tok("a embedding:style dog", padding="max_length", max_length=77)["input_ids"]
    assert tokenized.missing_embeddings == []


def test_embedding_names_cannot_leave_the_folder(tmp_path, tok):
    inside = tmp_path / "embeddings"
    inside.mkdir()
    save_file({"emb_params": torch.zeros(1, 32)}, tmp_path / "secret.safetensors")
    library = EmbeddingLibrary(inside, width=32)
    assert library.vectors("../secret") is None
    assert library.vectors(str(tmp_path / "secret")) is None


def test_an_unreadable_embedding_file_is_reported_not_raised(tmp_path, tok, caplog):
    (tmp_path / "broken.pt").write_bytes(b"not a pickle")
    with caplog.at_level(logging.WARNING):
        tokenized = tokenize_prompt("embedding:broken cat", tok, embeddings=EmbeddingLibrary(tmp_path))
    assert "could not read embedding broken" in caplog.text
    assert tokenized.missing_embeddings == ["broken"]
