"""`plmkit generate`: sampling filters, decoding loops (parity with transformers `generate`),
prompts with blanks, the Python API and the CLI.

Models are tiny and random. GPT, LLaMA and GLM use initializer_range 0.3 so that greedy
decoding wanders over the vocabulary instead of repeating one token (a stronger parity check).
"""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from plmkit.generate import (
    GlmRow,
    Piece,
    Sampler,
    Sampling,
    apply_repetition_penalty,
    apply_top_k,
    apply_top_p,
    decode_continuations,
    decode_glm,
    decode_seq2seq,
    encode_prompt,
    fill_text,
    mask_candidates,
    parse_prompt,
    sample_from,
    sentinel_numbers,
    split_spans,
)
from plmkit.models import build_model, get_config, save_model

V = 96  # vocabulary of the id-level models


class IdsTok:
    """Stand-in tokenizer for id-level tests: the text of ids 4, 5 is " 4 5"."""

    def decode(self, ids, skip_special_tokens=False):
        return "".join(f" {i}" for i in ids)


def tiny(family: str, **overrides):
    torch.manual_seed(0)
    std = {"t5": 1.0}.get(family, 0.3)
    cfg = get_config(family, "tiny", vocab_size=V, initializer_range=std, **overrides)
    return build_model(cfg).eval()


def continue_ids(model, prompts, settings: Sampling, eos: int = -1, use_cache: bool = True, seed: int = 0):
    pieces = [Piece(IdsTok(), p) for p in prompts]
    sampler = Sampler(settings, len(prompts), V, "cpu", torch.Generator().manual_seed(seed))
    limits = [(settings.max_new_tokens, "length")] * len(prompts)
    decode_continuations(model, prompts, pieces, sampler, limits, {eos}, 0, use_cache)
    return [p.ids for p in pieces], [p.finish for p in pieces]


def seq2seq_ids(model, inputs, settings: Sampling, eos: int = -1, use_cache: bool = True, seed: int = 0):
    pieces = [Piece(IdsTok()) for _ in inputs]
    sampler = Sampler(settings, len(inputs), V, "cpu", torch.Generator().manual_seed(seed))
    decode_seq2seq(model, inputs, pieces, sampler, settings.max_new_tokens, [{eos}] * len(inputs), 0, use_cache)
    return [p.ids for p in pieces], [p.finish for p in pieces]


PROMPTS = [[5, 9, 17, 3, 40], [7, 7, 21], [11, 60, 2, 33, 8, 90, 14, 51, 6, 70, 25, 12]]
GREEDY = Sampling(max_new_tokens=20, temperature=0)
SAMPLED = Sampling(max_new_tokens=16, temperature=1.0, top_k=40, top_p=0.95, repetition_penalty=1.3)


# ---- filters: literal examples ----------------------------------------------------------------------
def test_top_k_keeps_the_k_largest_and_their_ties():
    assert apply_top_k(torch.tensor([[1.0, 3.0, 2.0, 0.0]]), 2).tolist() == [[-math.inf, 3.0, 2.0, -math.inf]]
    assert apply_top_k(torch.tensor([[1.0, 2.0, 2.0, 0.0]]), 1).tolist() == [[-math.inf, 2.0, 2.0, -math.inf]]
    assert apply_top_k(torch.tensor([[1.0, 2.0]]), 0).tolist() == [[1.0, 2.0]]          # 0 = off


@pytest.mark.parametrize("p, kept", [(0.4, 1), (0.7, 2), (0.8, 3), (0.95, 4), (1.0, 4)])
def test_top_p_keeps_the_smallest_head_holding_p(p, kept):
    # probabilities .5 .25 .15 .1 (cumulative .5 .75 .9 1), shuffled to test the un-sorting
    probs = torch.tensor([[0.15, 0.5, 0.1, 0.25]])
    out = apply_top_p(probs.log(), p).softmax(-1)
    expected = {1: [0.0, 1.0, 0.0, 0.0], 2: [0.0, 2 / 3, 0.0, 1 / 3], 3: [0.15 / 0.9, 0.5 / 0.9, 0, 0.25 / 0.9],
                4: [0.15, 0.5, 0.1, 0.25]}
    assert torch.allclose(out, torch.tensor([expected[kept]]), atol=1e-6)


def test_repetition_penalty_divides_positive_and_multiplies_negative_seen_logits():
    logits = torch.tensor([[2.0, -1.0, 0.5, -0.5]])
    seen = torch.tensor([[True, True, False, False]])
    assert apply_repetition_penalty(logits, seen, 2.0).tolist() == [[1.0, -2.0, 0.5, -0.5]]


def test_filters_match_the_transformers_logits_processors():
    from transformers import RepetitionPenaltyLogitsProcessor, TopKLogitsWarper, TopPLogitsWarper

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 50, generator=g) * 3
    ids = torch.randint(0, 50, (4, 12), generator=g)
    seen = torch.zeros(4, 50, dtype=torch.bool).scatter_(1, ids, True)
    assert torch.equal(apply_repetition_penalty(logits, seen, 1.3), RepetitionPenaltyLogitsProcessor(1.3)(ids, logits))
    assert torch.equal(apply_top_k(logits, 7), TopKLogitsWarper(7)(ids, logits))
    for p in (0.3, 0.9):
        assert torch.equal(apply_top_p(logits, p).isinf(), TopPLogitsWarper(p)(ids, logits).isinf())


def test_sample_from_inverts_the_cdf_and_never_draws_a_zero_probability():
    probs = torch.tensor([[0.2, 0.0, 0.5, 0.3]]).expand(7, 4)
    uniforms = torch.tensor([0.0, 0.19, 0.2, 0.21, 0.69, 0.71, 0.999])
    assert sample_from(probs, uniforms).tolist() == [0, 0, 2, 2, 2, 3, 3]


def test_sampled_frequencies_follow_temperature_and_top_k():
    """20000 draws: each frequency is within 5 standard errors, sqrt(q(1-q)/n) <= 0.0036, of
    softmax(log p / T) restricted to the top k (5σ keeps false failures below 1e-6)."""
    n, p = 20000, torch.tensor([0.5, 0.3, 0.15, 0.05])
    for temperature, top_k in ((1.0, 0), (2.0, 0), (1.0, 2)):
        s = Sampling(temperature=temperature, top_k=top_k)
        picked = Sampler(s, n, 4, "cpu", torch.Generator().manual_seed(1))(p.log().expand(n, 4))
        q = p ** (1 / temperature)
        q[top_k or 4:] = 0
        q /= q.sum()
        freq = torch.bincount(picked, minlength=4).double() / n
        assert torch.all((freq - q).abs() <= 5 * (q * (1 - q) / n).sqrt() + 1e-12), (temperature, top_k, freq, q)


@pytest.mark.parametrize("bad, flag", [
    (dict(temperature=-1.0), "--temperature"), (dict(temperature=float("nan")), "--temperature"),
    (dict(top_p=0.0), "--top-p"), (dict(top_p=1.5), "--top-p"), (dict(top_k=-1), "--top-k"),
    (dict(repetition_penalty=0.0), "--repetition-penalty"), (dict(max_new_tokens=0), "--max-new-tokens"),
    (dict(num_samples=2, temperature=0.0), "identical"), (dict(stop=("",)), "--stop"), (dict(seed=-1), "--seed"),
])
def test_bad_settings_are_one_line_errors_naming_the_flag(bad, flag):
    from plmkit.errors import PlmkitError

    with pytest.raises(PlmkitError, match=flag):
        Sampling(**bad)


# ---- decoding loops: parity, caching, batching, seeds --------------------------------------------------
@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_greedy_continuation_equals_transformers_generate(family, tmp_path):
    from transformers import AutoModelForCausalLM

    from plmkit.models.hf import export_hf

    model = tiny(family)
    assert family != "llama" or model.cfg.kv_heads < model.cfg.num_attention_heads      # grouped K/V heads
    export_hf(model, model.cfg, tmp_path)
    theirs = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    theirs.generation_config.eos_token_id = None
    for prompt in PROMPTS[::2]:
        ours = continue_ids(model, [prompt], GREEDY)[0][0]
        out = theirs.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                              max_new_tokens=20, do_sample=False, pad_token_id=0)
        assert ours == out[0, len(prompt):].tolist()
        # make the token whose first appearance is latest the EOS: both must stop right there
        eos = max(set(ours), key=ours.index)
        ours_eos, finish = continue_ids(model, [prompt], GREEDY, eos=eos)
        out = theirs.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False, pad_token_id=0,
                              eos_token_id=eos)[0, len(prompt):].tolist()
        assert finish == ["eos"] and out == ours_eos[0] + [eos]


def test_greedy_t5_equals_transformers_generate(tmp_path):
    from transformers import T5ForConditionalGeneration

    from plmkit.models.hf import export_hf

    model = tiny("t5")
    export_hf(model, model.cfg, tmp_path)
    theirs = T5ForConditionalGeneration.from_pretrained(tmp_path).eval()
    theirs.generation_config.eos_token_id = None
    ours = seq2seq_ids(model, PROMPTS, GREEDY)[0]                       # batched, right-padded
    for prompt, mine in list(zip(PROMPTS, ours, strict=True))[::2]:
        out = theirs.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False, decoder_start_token_id=0,
                              pad_token_id=0)
        assert mine == out[0, 1:].tolist()
        eos = max(set(mine), key=mine.index)
        mine_eos, finish = seq2seq_ids(model, [prompt], GREEDY, eos=eos)
        out = theirs.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False, decoder_start_token_id=0,
                              pad_token_id=0, eos_token_id=eos)[0, 1:].tolist()
        assert finish == ["eos"] and out == mine_eos[0] + [eos]


@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_a_left_padded_batch_decodes_each_prompt_as_alone(family):
    model = tiny(family)
    batched = continue_ids(model, PROMPTS, GREEDY)[0]
    assert batched == [continue_ids(model, [p], GREEDY)[0][0] for p in PROMPTS]


@pytest.mark.parametrize("family", ["gpt", "llama", "t5"])
def test_cached_and_uncached_decoding_give_the_same_tokens(family):
    model = tiny(family)
    run = seq2seq_ids if family == "t5" else continue_ids
    cached = run(model, PROMPTS, SAMPLED, seed=3)[0]
    assert cached == run(model, PROMPTS, SAMPLED, use_cache=False, seed=3)[0]
    assert all(len(ids) == 16 for ids in cached)


def test_a_seed_reproduces_samples_and_another_seed_changes_them():
    model = tiny("gpt")
    first = continue_ids(model, PROMPTS, SAMPLED, seed=3)[0]
    assert first == continue_ids(model, PROMPTS, SAMPLED, seed=3)[0]
    assert first != continue_ids(model, PROMPTS, SAMPLED, seed=4)[0]


GLM_IDS = {"pad": 0, "cls": 1, "eos": 2, "mask": 3, "sop": 4, "eop": 5}


def glm_fill(model, rows, settings, use_cache=True, seed=0):
    spans = [[Piece(IdsTok()) for _ in r.blanks] for r in rows]
    sampler = Sampler(settings, len(rows), V, "cpu", torch.Generator().manual_seed(seed))
    decode_glm(model, rows, spans, sampler, settings.max_new_tokens, GLM_IDS, use_cache)
    return [[p.ids for p in row] for row in spans], [[p.finish for p in row] for row in spans]


GLM_ROWS = [GlmRow([1, 10, 11, 3, 12, 13, 3, 14, 2], [3, 6]), GlmRow([1, 20, 3, 21, 2], [2]),
            GlmRow([1, 30, 31, 32, 33, 34, 3], [6])]


def test_glm_cached_and_uncached_infilling_give_the_same_tokens():
    model = tiny("glm")
    settings = Sampling(max_new_tokens=6, temperature=1.0)
    assert glm_fill(model, GLM_ROWS, settings, seed=5) == glm_fill(model, GLM_ROWS, settings, use_cache=False, seed=5)


def test_glm_infilling_follows_the_training_layout_of_the_glm_objective():
    """Greedy spans, laid out as the glm objective lays out a training row (blanks in prompt
    order): at every Part B input the model's argmax is the next generated token."""
    from plmkit.data.objectives import SpecialIds
    from plmkit.data.objectives.glm import glm_blank_infill

    model = tiny("glm")
    sp = SpecialIds(pad=0, cls=1, sep=2, mask=3, eos=2, bos=1, vocab_size=V, sop=4, eop=5)
    spans, finish = glm_fill(model, GLM_ROWS, Sampling(max_new_tokens=5, temperature=0))
    for row, fills, ends in zip(GLM_ROWS, spans, finish, strict=True):
        text, starts, lengths, at = [], [], [], 0
        for i, t in enumerate(row.part_a):          # the text the filled prompt stands for
            if i in row.blanks:
                fill = fills[row.blanks.index(i)]
                starts.append(len(text))
                lengths.append(len(fill))
                text += fill
            else:
                text.append(t)
        ex = glm_blank_infill(text, starts, lengths, np.arange(len(starts)), sp)
        assert ex["input_ids"][:ex["sep"]].tolist() == row.part_a
        logits = model(torch.tensor(ex["input_ids"])[None].long(), position_ids=torch.tensor(ex["position_ids"])[None].long(),
                       block_position_ids=torch.tensor(ex["block_position_ids"])[None].long(), sep=ex["sep"]).logits
        predicted = logits[0].argmax(-1).tolist()
        for fill, end in zip(fills, ends, strict=True):   # Part B: [sop] x1 … xn per span
            at_sop = ex["sep"] + at
            wanted = fill + ([5] if end == "eos" else [])
            assert predicted[at_sop:at_sop + len(wanted)] == wanted
            at += len(fill) + 1


# ---- prompts and text ---------------------------------------------------------------------------------
def test_parse_prompt_splits_at_every_kind_of_blank():
    p = parse_prompt("[MASK] a <mask> b [gMASK] c [sMASK]<extra_id_12>")
    assert p.pieces == ["", " a ", " b ", " c ", "", ""]
    assert p.blanks == [("mask", -1), ("mask", -1), ("gmask", -1), ("smask", -1), ("sentinel", 12)]


def test_a_mask_becomes_the_sentinel_after_the_largest_so_far():
    assert sentinel_numbers(parse_prompt("a [MASK] b <extra_id_4> c [MASK] d <extra_id_1>"), 100) == [0, 4, 5, 1]
    from plmkit.errors import PlmkitError

    with pytest.raises(PlmkitError, match="twice"):
        sentinel_numbers(parse_prompt("<extra_id_0> [MASK] <extra_id_1>"), 100)
    with pytest.raises(PlmkitError, match="sentinels"):
        sentinel_numbers(parse_prompt("<extra_id_100>"), 100)


def test_split_spans_cuts_a_t5_output_at_its_sentinels():
    assert split_spans([99, 5, 6, 98, 7, 99, 8], [99, 98, 97], {99, 98, 97}) == [[5, 6], [7], []]
    assert split_spans([4, 99, 5], [99], {99}) == [[5]]          # tokens before the first sentinel are dropped


@pytest.fixture(scope="module")
def toks(tmp_path_factory):
    """Tiny trained tokenizers, one per kind: wordpiece (bert, glm), bpe (gpt), unigram (t5), sp-bpe (llama)."""
    from plmkit.tokenization import load_tokenizer, resolve_spec, train_tokenizer

    words = ("the cat sat on the mat . a dog ran under the old tree . birds sing over the red roof . "
             "my friend reads a long book at night . the river flows past the quiet town .").split()
    rng = np.random.default_rng(0)
    docs = [" ".join(rng.choice(words, 12)) for _ in range(150)]
    out = {}
    for preset in ("bert", "gpt", "t5", "llama", "glm"):
        d = tmp_path_factory.mktemp(f"tok_{preset}")
        train_tokenizer(docs, d / "tok", resolve_spec(preset=preset, vocab_size=420, allow_smaller_vocab=True))
        out[preset] = load_tokenizer(d / "tok")
    return out


@pytest.mark.parametrize("preset", ["bert", "gpt", "t5", "llama"])
def test_a_masked_prompt_encodes_like_the_text_with_the_word_replaced(toks, preset):
    tok = toks[preset]
    full = tok.encode("the cat sat on the mat .").tolist()
    head, with_word = tok.encode("the cat").tolist(), tok.encode("the cat sat").tolist()
    assert full[:len(with_word)] == with_word and with_word[:len(head)] == head
    ids, where = encode_prompt(tok, parse_prompt("the cat [MASK] on the mat ."), [4])
    assert ids == head + [4] + full[len(with_word):] and where == [len(head)]


def test_fill_text_glues_a_word_continuation_and_keeps_the_user_spacing(toks):
    tok = toks["bert"]
    prompt = parse_prompt("the cat [MASK] on the [MASK] .")
    ids, where = encode_prompt(tok, prompt, [tok.id("mask")] * 2)
    s, sat, mat = (tok.hf.token_to_id(w) for w in ("##s", "sat", "mat"))
    assert fill_text(tok, prompt, ids, where, [[s], [mat]]) == ("the cats on the mat .", ["s", "mat"])
    assert fill_text(tok, prompt, ids, where, [[sat], []])[0] == "the cat sat on the  ."


def test_a_piece_streams_its_text_and_holds_back_a_possible_stop_string():
    sent = []
    piece = Piece(IdsTok(), [1, 2], stop=(" 7 8",), on_text=sent.append)
    assert [piece.push(t) for t in (5, 6, 7, 8)] == [False, False, False, True]
    assert piece.finish == "stop" and piece.text == " 5 6" and "".join(sent) == " 5 6" and piece.ids == [5, 6, 7, 8]
    free = []
    piece = Piece(IdsTok(), [1], on_text=free.append)
    for t in (5, 6):
        piece.push(t)
    piece.close("length")
    assert "".join(free) == piece.text == " 5 6" and len(free) == 2


def test_a_piece_never_streams_half_a_character():
    class Bytes:                       # id 1 = the first byte of "é", id 2 = the second
        def decode(self, ids, skip_special_tokens=False):
            text = "".join({0: "a", 1: "", 2: "é"}[i] for i in ids)
            return text + ("\ufffd" if ids and ids[-1] == 1 else "")

    sent = []
    piece = Piece(Bytes(), on_text=sent.append)
    for t in (0, 1, 2):
        piece.push(t)
    piece.close("eos")
    assert sent == ["a", "é"]


# ---- the API and the CLI on RUN directories -------------------------------------------------------
def make_run(root, family, tok, **overrides):
    """A RUN/ as `plmkit train` writes it: config.json, model.safetensors, tokenizer/, plmkit.json."""
    from plmkit.manifest import write_manifest

    torch.manual_seed(0)
    cfg = get_config(family, "tiny", vocab_size=tok.vocab_size, pad_token_id=tok.id("pad"), bos_token_id=tok.id("bos"),
                     eos_token_id=tok.id("eos"), position_offset=tok.id("pad") + 1 if family == "roberta" else 0,
                     **overrides)
    run = root / family
    save_model(build_model(cfg), cfg, run)
    tok.save(run / "tokenizer")
    write_manifest(run, "run", params={"model": f"{family}:tiny"}, model=cfg.to_dict())
    return run


@pytest.fixture(scope="module")
def runs(toks, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"gpt": make_run(root, "gpt", toks["gpt"], initializer_range=0.3),
            "bert": make_run(root, "bert", toks["bert"]),
            "t5": make_run(root, "t5", toks["t5"]),
            "glm": make_run(root, "glm", toks["glm"], initializer_range=0.3)}


def test_plmkit_generate_is_the_api_and_import_plmkit_stays_light(runs):
    import plmkit

    code = "import sys, plmkit; assert 'torch' not in sys.modules and 'plmkit.generate' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    result = plmkit.generate(runs["gpt"], "the cat", max_new_tokens=5, temperature=0)[0]
    assert result == plmkit.generate.generate(runs["gpt"], ["the cat"], max_new_tokens=5, temperature=0)[0]
    assert result.text == "the cat" + result.completion and result.finish_reason == "length"


def test_stop_strings_end_the_continuation_before_them(runs):
    from plmkit.generate import generate

    free = generate(runs["gpt"], "the cat", max_new_tokens=30, temperature=0)[0].completion
    stop = free.strip()[6:9]
    stopped = generate(runs["gpt"], "the cat", max_new_tokens=30, temperature=0, stop=[stop])[0]
    assert stopped.finish_reason == "stop" and stopped.completion == free[:free.find(stop)]


def test_t5_fills_each_sentinel_and_glm_each_blank(runs):
    from plmkit.generate import generate

    t5 = generate(runs["t5"], "the [MASK] sat on <extra_id_7> mat .", max_new_tokens=12, temperature=1.0)[0]
    assert len(t5.spans) == 2 and t5.text.startswith("the ") and t5.text.endswith(" mat .")
    glm = generate(runs["glm"], ["the [MASK] sat on the [MASK] .", "the cat"], max_new_tokens=4, temperature=0)
    assert len(glm[0].spans) == 2 and glm[0].text.endswith(" .")
    assert glm[1].spans is None and glm[1].text == "the cat" + glm[1].completion and glm[1].completion


def test_encoder_candidates_equal_transformers_probabilities(runs, tmp_path):
    from transformers import BertForMaskedLM

    from plmkit.generate import load_run
    from plmkit.models.hf import export_hf

    r = load_run(runs["bert"], "cpu")
    export_hf(r.model, r.cfg, tmp_path)
    theirs = BertForMaskedLM.from_pretrained(tmp_path).eval()
    ids = [2, 40, 41, 4, 42, 4, 3]
    ours = mask_candidates(r.model, [ids], [[3, 5]], 5, (), 0)[0]
    probs = theirs(torch.tensor([ids])).logits[0].softmax(-1)
    for at, cands in zip((3, 5), ours, strict=True):
        top = probs[at].topk(5)
        assert [c[0] for c in cands] == top.indices.tolist()
        assert np.allclose([c[1] for c in cands], top.values.tolist(), atol=1e-5)


def test_cli_json_is_what_the_api_returns(runs, run_cli):
    from plmkit.generate import generate

    code, out, err = run_cli("generate", runs["gpt"], "--prompt", "the cat", "--max-new-tokens", "6",
                             "--temperature", "0.9", "--seed", "7", "--num-samples", "2", "--json")
    assert code == 0, err
    doc = json.loads(out)
    api = generate(runs["gpt"], "the cat", max_new_tokens=6, temperature=0.9, seed=7, num_samples=2)
    assert doc["family"] == "gpt" and doc["results"] == [r.to_dict() for r in api]
    assert doc["settings"]["seed"] == 7 and [r["sample"] for r in doc["results"]] == [0, 1]


def test_cli_prompt_file_batches_like_single_prompts(runs, run_cli, tmp_path, monkeypatch):
    from plmkit.generate import generate

    prompts = ["the cat", "a dog ran under the old tree", "my"]
    (tmp_path / "p.txt").write_text("\n".join(prompts[:2]) + "\n\n" + prompts[2] + "\n")
    code, out, err = run_cli("generate", runs["gpt"], "--prompt-file", tmp_path / "p.txt", "--temperature", "0",
                             "--max-new-tokens", "8", "--json")
    assert code == 0, err
    alone = [generate(runs["gpt"], p, max_new_tokens=8, temperature=0)[0].completion for p in prompts]
    assert [r["completion"] for r in json.loads(out)["results"]] == alone
    monkeypatch.setattr(sys, "stdin", io.StringIO("the cat\nmy\n"))
    code, out, err = run_cli("generate", runs["gpt"], "--prompt-file", "-", "--temperature", "0",
                             "--max-new-tokens", "8", "--json")
    assert code == 0 and [r["prompt"] for r in json.loads(out)["results"]] == ["the cat", "my"]


def test_cli_stream_prints_the_prompt_and_then_the_continuation(runs, run_cli):
    from plmkit.generate import generate

    code, out, err = run_cli("generate", runs["gpt"], "-p", "the cat", "--temperature", "0", "--max-new-tokens", "9",
                             "--stream")
    assert code == 0, err
    assert out == generate(runs["gpt"], "the cat", max_new_tokens=9, temperature=0)[0].text + "\n"
    code, out, err = run_cli("generate", runs["glm"], "-p", "the [MASK] sat on [MASK] mat", "--temperature", "0",
                             "--max-new-tokens", "3", "--stream")
    result = generate(runs["glm"], "the [MASK] sat on [MASK] mat", max_new_tokens=3, temperature=0)[0]
    assert code == 0 and out.splitlines()[-1] == result.text and out.startswith("[1] ")


def test_cli_encoder_table_fill_and_json(runs, run_cli, toks):
    args = ("generate", runs["bert"], "-p", "the cat [MASK] on the [MASK] .")
    code, out, err = run_cli(*args)
    assert code == 0 and "candidate" in out and out.count("\n") > 10
    code, filled, _ = run_cli(*args, "--fill")
    code, out, _ = run_cli(*args, "--json", "--top-k", "3")
    result = json.loads(out)["results"][0]
    assert filled.strip() == result["text"] and [m["position"] for m in result["masks"]] == [3, 6]
    for m in result["masks"]:
        probs = [c["prob"] for c in m["candidates"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1
        assert not set(c["id"] for c in m["candidates"]) & set(toks["bert"].special_ids.tolist())


LONG = "the cat sat on the mat " * 40


@pytest.mark.parametrize("family, args, message", [
    ("gpt", ["-p", "the cat [MASK] on"], "cannot fill"),
    ("bert", ["-p", "the cat sat"], "has no [MASK]"),
    ("bert", ["-p", "the <extra_id_0> sat"], "cannot fill"),
    ("t5", ["-p", "the [gMASK]"], "cannot fill"),
    ("glm", ["-p", "the <extra_id_0> sat"], "cannot fill"),
    ("gpt", ["-p", "   "], "is empty"),
    ("gpt", ["-p", LONG], "longer than the model's context"),
    ("bert", ["-p", LONG + "[MASK]"], "longer than the model's context"),
    ("gpt", ["-p", "x", "--temperature", "-1"], "--temperature"),
    ("gpt", ["-p", "x", "--temperature", "nan"], "--temperature"),
    ("gpt", ["-p", "x", "--top-p", "0"], "--top-p"),
    ("gpt", ["-p", "x", "--top-p", "1.5"], "--top-p"),
    ("gpt", ["-p", "x", "--top-k", "-1"], "--top-k"),
    ("gpt", ["-p", "x", "--repetition-penalty", "0"], "--repetition-penalty"),
    ("gpt", ["-p", "x", "--max-new-tokens", "0"], "--max-new-tokens"),
    ("gpt", ["-p", "x", "--num-samples", "2", "--temperature", "0"], "identical"),
    ("gpt", ["-p", "x", "-p", "y", "--stream"], "--stream"),
    ("gpt", ["--prompt-file", "no-such-file.txt"], "does not exist"),
    ("gpt", [], "no prompt"),
])
def test_cli_user_errors_are_one_line(runs, run_cli, family, args, message):
    code, out, err = run_cli("generate", runs[family], *args)
    assert code == 1 and message in err and err.strip().count("\n") == 0, err


def test_cli_refuses_a_run_without_weights(runs, run_cli, tmp_path):
    shutil.copytree(runs["gpt"], tmp_path / "run")
    (tmp_path / "run" / "model.safetensors").unlink()
    code, _, err = run_cli("generate", tmp_path / "run", "-p", "the cat")
    assert code == 1 and "has no model.safetensors" in err and err.strip().count("\n") == 0
