"""Specification of the pretraining objectives (plmkit.data.objectives): literal small examples
with exact outputs, ports of the reference loops for parity, round trips, determinism.

Seeded expectations were checked by hand against the rules in the module docstrings (counts,
unit boundaries, interleaving) before being pinned; the comment beside each says what to check.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from plmkit.data.objectives import IGNORE_INDEX, SpecialIds, example_rng
from plmkit.data.objectives.clm import BlockPacker, ClmPacker, clm_document, pack_documents
from plmkit.data.objectives.glm import (
    glm_blank_infill,
    glm_examples,
    place_spans,
    truncated_poisson_pmf,
)
from plmkit.data.objectives.mlm import (
    MaskSpec,
    MlmPacker,
    _select_ngrams,
    _select_prefix,
    mask_tokens,
    masked_count,
    mlm_dynamic_example,
    mlm_example,
    mlm_segments,
    select_positions,
)
from plmkit.data.objectives.pairs import (
    nsp_examples,
    other_document_sampler,
    pack_pair,
    sentence_pairs,
    sop_examples,
    trim_counts,
    truncate_pair,
)
from plmkit.data.objectives.spans import (
    random_composition,
    random_spans_noise_mask,
    span_corrupt,
    t5_input_target_lengths,
    t5_num_noise_spans,
)
from plmkit.errors import PlmkitError

# pad 0, [CLS] 1, [SEP] 2, [MASK] 3, EOS 4, BOS 5, <|startofpiece|> 6, <|endofpiece|> 7, [gMASK] 8,
# sentinels <extra_id_0> = 99, <extra_id_1> = 98, … (T5's descending layout); ordinary ids 10…89.
SP = SpecialIds(
    pad=0, cls=1, sep=2, mask=3, eos=4, bos=5, vocab_size=100, sop=6, eop=7, gmask=8,
    sentinels=tuple(range(99, 89, -1)),
)
# [CLS] 20 … 29 [SEP] 30 … 36 [SEP]: 17 maskable tokens.
IDS = np.array([1, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 2, 30, 31, 32, 33, 34, 35, 36, 2])


def rows_equal(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b, strict=True)
    )


# ---------------------------------------------------------------- shared pieces


def test_example_rng_is_a_pure_function_of_seed_and_keys():
    draw = lambda *k: example_rng(*k).integers(1 << 62, size=4).tolist()  # noqa: E731
    assert draw(1, 0, 7) == draw(1, 0, 7)
    assert len({str(draw(1, 0, 7)), str(draw(1, 0, 8)), str(draw(1, 1, 7)), str(draw(2, 0, 7))}) == 4


def test_special_ids_masks_and_replacement_pool():
    assert SP.special_array.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, *range(90, 100)]
    assert SP.is_special(np.array([1, 10, 99, 89, 3])).tolist() == [True, False, True, False, True]
    assert SP.nonspecial_array.tolist() == list(range(9, 90))


def test_special_ids_travel_to_worker_processes():
    clone = pickle.loads(pickle.dumps(SP))
    assert clone.sentinels == SP.sentinels and np.array_equal(clone.nonspecial_array, SP.nonspecial_array)
    assert clone.is_special(np.array([3, 50])).tolist() == [True, False]


def test_special_ids_from_a_tokenizer_object():
    class Tok:
        vocab_size = 50
        roles = {"pad": 0, "unk": 9, "cls": 1, "sep": 2, "bos": 1, "eos": 2, "mask": 3, "gmask": 4,
                 "smask": 5, "sop": 6, "eop": 7}
        sentinel_ids = [49, 48]
        special_ids = np.array([0, 1, 2, 3, 4, 5, 6, 7, 9, 48, 49])

    sp = SpecialIds.from_tokenizer(Tok())
    assert (sp.bos, sp.eos, sp.sop, sp.eop, sp.sentinels) == (1, 2, 6, 7, (49, 48))
    assert sp.special_ids == (0, 1, 2, 3, 4, 5, 6, 7, 9, 48, 49)  # unk and smask come from special_ids


# ---------------------------------------------------------------- mlm


def test_masked_count_rounds_half_to_even_at_least_one_and_caps():
    assert [masked_count(n, 0.15) for n in (0, 1, 3, 10, 30, 126, 510)] == [0, 1, 1, 2, 4, 19, 76]
    assert masked_count(510, 0.15, max_predictions=20) == 20
    assert masked_count(2, 0.99) == 2  # never more than is maskable


def test_mask_tokens_literal_token_level():
    inp, lab = mask_tokens(IDS, SP.is_special(IDS), example_rng(7), specials=SP, mask_prob=0.25)
    # round(0.25 × 17) = 4 positions: 23, 26, 32 → [MASK]; 31 kept; no special selected.
    assert inp.tolist() == [1, 20, 21, 22, 3, 24, 25, 3, 27, 28, 29, 2, 30, 31, 3, 33, 34, 35, 36, 2]
    assert lab.tolist() == [-100] * 4 + [23, -100, -100, 26] + [-100] * 5 + [31, 32] + [-100] * 5


def test_mask_tokens_literal_whole_word():
    starts = np.array([0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0], bool)
    # words: [20 21] [22] [23 24 25] [26] [27 28] [29] | [30] (after [SEP]) [31 32] [33] [34] [35 36]
    inp, lab = mask_tokens(IDS, SP.is_special(IDS), example_rng(7), specials=SP, mask_prob=0.3, word_starts=starts)
    # round(0.3 × 17) = 5 tokens = whole words [27 28] [30] [35 36]; 27 → random 67, others [MASK]
    assert inp.tolist() == [1, 20, 21, 22, 23, 24, 25, 26, 67, 3, 29, 2, 3, 31, 32, 33, 34, 3, 3, 2]
    assert lab.tolist() == [-100] * 8 + [27, 28, -100, -100, 30, -100, -100, -100, -100, 35, 36, -100]


def test_mask_tokens_literal_ngram():
    inp, lab = mask_tokens(IDS, SP.is_special(IDS), example_rng(7), specials=SP, mask_prob=0.4, ngram=3)
    # round(0.4 × 17) = 7 tokens: 23, 26…29 (adjacent n-grams), 30, 36
    assert lab.tolist() == [-100] * 4 + [23, -100, -100, 26, 27, 28, 29, -100, 30] + [-100] * 5 + [36, -100]
    assert inp.tolist() == [1, 20, 21, 22, 3, 24, 25, 3, 3, 3, 3, 2, 3, 31, 32, 33, 34, 35, 3, 2]


def test_mask_tokens_replacement_split_extremes():
    special = SP.is_special(IDS)
    all_mask, lab = mask_tokens(IDS, special, example_rng(1), specials=SP, mask_replace=1.0, random_replace=0.0)
    assert np.array_equal(all_mask == 3, lab != IGNORE_INDEX)
    kept, lab = mask_tokens(IDS, special, example_rng(1), specials=SP, mask_replace=0.0, random_replace=0.0)
    assert np.array_equal(kept, IDS) and (lab != IGNORE_INDEX).sum() == 3
    rand, lab = mask_tokens(IDS, special, example_rng(1), specials=SP, mask_prob=0.9, mask_replace=0.0,
                            random_replace=1.0)
    replaced = rand[lab != IGNORE_INDEX]
    assert (lab != IGNORE_INDEX).sum() == 15 and not SP.is_special(replaced).any()


def test_mask_tokens_never_selects_special_positions_even_when_masking_everything():
    ids = np.array([1, 10, 2, 11, 3, 12, 99, 13, 2])  # a literal [MASK] and sentinel in the text are special too
    for ngram, starts in ((1, None), (1, np.ones(9, bool)), (3, np.ones(9, bool))):
        _, lab = mask_tokens(ids, SP.is_special(ids), example_rng(0), specials=SP, mask_prob=0.99,
                             word_starts=starts, ngram=ngram)
        assert (lab != IGNORE_INDEX).tolist() == [False, True, False, True, False, True, False, True, False]


def test_mask_tokens_nothing_maskable():
    ids = np.array([1, 2])
    inp, lab = mask_tokens(ids, SP.is_special(ids), example_rng(0), specials=SP)
    assert inp.tolist() == [1, 2] and lab.tolist() == [-100, -100]


def _bert_greedy(lengths, order, budget):
    """google-research/bert's loop: visit units in order, skip one that would overflow."""
    chosen, total = [], 0
    for i in order:
        if total >= budget:
            break
        if total + lengths[i] > budget:
            continue
        chosen.append(i)
        total += lengths[i]
    return sorted(chosen)


def _albert_ngrams(lengths, order, ns, budget):
    """google-research/albert's n-gram loop (with its back-off), over unit lengths."""
    covered, total = set(), 0
    for i in order:
        if total >= budget:
            break
        n = ns[i]
        while n >= 1 and sum(lengths[i : i + n]) + total > budget:
            n -= 1
        if n == 0 or any(j in covered for j in range(i, min(i + n, len(lengths)))):
            continue
        covered.update(range(i, min(i + n, len(lengths))))
        total += sum(lengths[i : i + n])
    return sorted(covered)


def test_unit_selection_matches_the_reference_loops():
    gen = np.random.default_rng(0)
    for _ in range(300):
        lengths = gen.integers(1, 5, size=int(gen.integers(1, 30)))
        order = gen.permutation(lengths.size)
        budget = int(gen.integers(1, lengths.sum() + 1))
        ns = gen.integers(1, 4, size=lengths.size)
        assert sorted(_select_prefix(lengths, order, budget).tolist()) == _bert_greedy(lengths.tolist(), order, budget)
        got = np.flatnonzero(_select_ngrams(lengths, order, ns, budget)).tolist()
        assert got == _albert_ngrams(lengths.tolist(), order, ns, budget)


def test_whole_word_selection_takes_whole_words_only():
    gen = np.random.default_rng(1)
    ids = np.concatenate(([1], gen.integers(10, 90, 60), [2]))
    starts = gen.random(62) < 0.5
    pos = select_positions(SP.is_special(ids), example_rng(3), mask_prob=0.3, word_starts=starts, ngram=2)
    chosen = np.zeros(62, bool)
    chosen[pos] = True
    for i in range(2, 61):  # a continuation token is chosen exactly when the token before it is
        if not starts[i]:
            assert chosen[i] == chosen[i - 1]


def test_mask_spec_validates_flags():
    with pytest.raises(PlmkitError, match="--mask-prob"):
        MaskSpec(mask_prob=1.5)
    with pytest.raises(PlmkitError, match="--mask-replace"):
        MaskSpec(mask_replace=0.9, random_replace=0.2)
    with pytest.raises(PlmkitError, match="--ngram"):
        MaskSpec(ngram=0)


def test_mlm_segments_and_rows():
    segs = mlm_segments(np.arange(10, 17), 5, SP)
    assert [s.tolist() for s in segs] == [[1, 10, 11, 12, 2], [1, 13, 14, 15, 2], [1, 16, 2]]
    row = mlm_example(segs[0], example_rng(0), SP, MaskSpec(mask_prob=0.3))
    assert set(row) == {"input_ids", "labels", "special_tokens_mask"}
    assert row["special_tokens_mask"].tolist() == [1, 0, 0, 0, 1] and (row["labels"] != -100).sum() == 1
    dyn = mlm_dynamic_example(segs[2], SP)
    assert {k: v.tolist() for k, v in dyn.items()} == {"input_ids": [1, 16, 2], "special_tokens_mask": [1, 0, 1]}
    with pytest.raises(PlmkitError, match="--seq-len"):
        mlm_segments([10], 2, SP)


def test_mlm_whole_word_table_lookup():
    table = np.zeros(100, bool)
    table[[20, 23, 26]] = True  # words [20 21 22] [23 24 25] [26 27 28 29]
    ids = np.array([1, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 2])
    row = mlm_example(ids, example_rng(2), SP, MaskSpec(mask_prob=0.3), word_start_table=table)
    chosen = np.flatnonzero(row["labels"] != -100).tolist()
    assert chosen in ([1, 2, 3], [4, 5, 6])  # round(0.3 × 10) = 3: one 3-piece word; the 4-piece one overflows


def test_mlm_cross_document_packing_is_the_separated_stream():
    packer = MlmPacker(6, SP)
    docs = [[10, 11, 12], [13, 14], [15], [16, 17, 18, 19, 20, 21, 22]]
    blocks = [b for d in docs for b in packer.add(d)] + packer.finish()
    assert [b.tolist() for b in blocks] == [
        [1, 10, 11, 12, 2, 2], [1, 13, 14, 2, 15, 2], [1, 2, 16, 17, 18, 2], [1, 19, 20, 21, 22, 2], [1, 2, 2],
    ]
    stream = np.concatenate([b[1:-1] for b in blocks])
    assert stream.tolist() == [t for d in docs for t in (*d, 2)]


# ---------------------------------------------------------------- nsp / sop


def _naive_truncate_counts(la, lb, max_tokens):
    ra = rb = 0
    while (la - ra) + (lb - rb) > max_tokens:
        if la - ra > lb - rb:
            ra += 1
        else:
            rb += 1
    return ra, rb


def test_trim_counts_match_the_reference_loop():
    for la in range(1, 14):
        for lb in range(1, 14):
            for m in range(2, 26):
                assert trim_counts(la, lb, m) == _naive_truncate_counts(la, lb, m), (la, lb, m)


def test_truncate_pair_keeps_contiguous_pieces():
    a, b = np.arange(10, 30), np.arange(40, 45)
    ta, tb = truncate_pair(a, b, 12, example_rng(0))
    assert (ta.size, tb.size) == (7, 5)  # trim_counts(20, 5, 12) = (13, 0)
    assert ta.tolist() == list(range(ta[0], ta[0] + 7)) and tb.tolist() == b.tolist()


def test_pack_pair_layout():
    row = pack_pair([10, 11], [12, 13, 14], SP)
    assert row["input_ids"].tolist() == [1, 10, 11, 2, 12, 13, 14, 2]
    assert row["token_type_ids"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert row["special_tokens_mask"].tolist() == [1, 0, 0, 1, 0, 0, 0, 1]


DOC = [np.array([10, 11]), np.array([12, 13]), np.array([14, 15]), np.array([16, 17])]


def test_sentence_pairs_chunking_literal():
    # target 4 tokens: chunks [s0 s1] and [s2 s3]; a 2-sentence chunk always splits after the first
    pairs = sentence_pairs(DOC, example_rng(0), max_num_tokens=4, task="sop", short_seq_prob=0.0, prob=0.0)
    assert [(a.tolist(), b.tolist(), y) for a, b, y in pairs] == [([10, 11], [12, 13], 0), ([14, 15], [16, 17], 0)]
    swapped = sentence_pairs(DOC, example_rng(0), max_num_tokens=4, task="sop", short_seq_prob=0.0, prob=1.0)
    assert [(a.tolist(), b.tolist(), y) for a, b, y in swapped] == [([12, 13], [10, 11], 1), ([16, 17], [14, 15], 1)]


def test_nsp_random_next_puts_unused_sentences_back():
    other = [np.array([80, 81, 82])]
    pairs = sentence_pairs(DOC, example_rng(0), max_num_tokens=4, task="nsp", short_seq_prob=0.0, prob=1.0,
                           sample_other=lambda rng: other)
    # every chunk [s_i s_i+1] keeps A = s_i and puts s_i+1 back; the last chunk [s3] is alone (forced random)
    assert [a.tolist() for a, _, _ in pairs] == [[10, 11], [12, 13], [14, 15], [16, 17]]
    assert [y for _, _, y in pairs] == [1, 1, 1, 1]
    # B = the other document's sentence trimmed to 2 tokens (trim_counts(2, 3, 4) = (0, 1)), front or back
    assert all(b.tolist() in ([80, 81], [81, 82]) for _, b, _ in pairs)


def test_nsp_without_another_document_keeps_true_continuations():
    pairs = sentence_pairs(DOC, example_rng(0), max_num_tokens=4, task="nsp", short_seq_prob=0.0, prob=1.0)
    assert [(a.tolist(), b.tolist(), y) for a, b, y in pairs] == [([10, 11], [12, 13], 0), ([14, 15], [16, 17], 0)]


def test_single_sentence_chunk_is_split_never_dropped_or_mixed():
    sentence = [np.arange(10, 16)]
    (a, b, y), = sentence_pairs(sentence, example_rng(4), max_num_tokens=20, task="nsp", short_seq_prob=0.0)
    assert y == 0 and np.concatenate((a, b)).tolist() == list(range(10, 16)) and a.size and b.size
    (a, b, y), = sentence_pairs(sentence, example_rng(4), max_num_tokens=20, task="sop", short_seq_prob=0.0, prob=1.0)
    assert y == 1 and np.concatenate((b, a)).tolist() == list(range(10, 16))
    assert sentence_pairs([np.array([10])], example_rng(0), max_num_tokens=20) == []  # one token: no pair


def test_other_document_sampler_excludes_self_and_empty_documents():
    docs = [[np.array([10])], [], [np.array([11])], [np.array([], dtype=np.int32)]]
    sample = other_document_sampler(docs, 0)
    assert {int(sample(example_rng(0, i))[0][0]) for i in range(50)} == {11}
    assert other_document_sampler(docs[:2], 0) is None


def test_sop_order_always_comes_from_one_document():
    gen = np.random.default_rng(5)
    lengths = gen.integers(1, 12, size=40)
    doc = np.split(np.arange(lengths.sum()) + 1000, np.cumsum(lengths)[:-1])  # unique ids = positions
    for seed in range(20):
        for a, b, y in sentence_pairs(doc, example_rng(seed), max_num_tokens=30, task="sop"):
            first, second = (a, b) if y == 0 else (b, a)
            assert first.max() < second.min()  # in document order once un-swapped
            assert a.size + b.size <= 30 and a.size and b.size


def test_nsp_and_sop_rows():
    sample = other_document_sampler([DOC, [np.arange(60, 70)]], 0)
    rows = nsp_examples(DOC, example_rng(0), seq_len=9, specials=SP, sample_other=sample)
    for row in rows:
        assert set(row) == {"input_ids", "token_type_ids", "special_tokens_mask", "labels", "next_sentence_label"}
        ids, types = row["input_ids"], row["token_type_ids"]
        first_sep = int(np.flatnonzero(row["special_tokens_mask"])[1])
        assert ids.size <= 9 and ids[0] == 1 and row["special_tokens_mask"][-1] == 1
        assert types.tolist() == [0] * (first_sep + 1) + [1] * (ids.size - first_sep - 1)
        assert (row["labels"][row["special_tokens_mask"] == 1] == -100).all()
        assert row["next_sentence_label"] in (0, 1)
    rows = sop_examples(DOC, example_rng(0), seq_len=9, specials=SP)
    assert all("sentence_order_label" in r and "next_sentence_label" not in r for r in rows)
    with pytest.raises(PlmkitError, match="--seq-len"):
        nsp_examples(DOC, example_rng(0), seq_len=4, specials=SP)


# ---------------------------------------------------------------- spans / t5


def test_t5_lengths_match_the_reference_table():
    table = {128: (141, 29), 256: (284, 58), 512: (568, 114), 1024: (1137, 229), 2048: (2274, 456)}
    assert {n: t5_input_target_lengths(n) for n in table} == table
    assert t5_input_target_lengths(512, noise_density=0.5) == (766, 512)


def test_random_composition_is_a_composition():
    gen = example_rng(0)
    for total, parts in ((1, 1), (7, 1), (7, 7), (50, 13)):
        c = random_composition(total, parts, gen)
        assert c.size == parts and c.sum() == total and c.min() >= 1


def test_noise_mask_structure():
    for length in range(2, 80):
        mask = random_spans_noise_mask(length, 0.15, example_rng(length))
        num_noise, num_spans = t5_num_noise_spans(length)
        runs = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(int)))) == 1)
        assert mask.sum() == num_noise and runs.size == num_spans
        assert not mask[0] and mask[-1]  # starts with non-noise, ends with noise


def test_span_corrupt_reference_tiny_example():
    # data-objectives.md §4.6: 20 tokens → 3 noise tokens in 1 span, necessarily at the end
    out = span_corrupt(np.arange(10, 30), example_rng(0), sentinels=SP.sentinels, eos=4)
    assert out["input_ids"].tolist() == list(range(10, 27)) + [99, 4]
    assert out["labels"].tolist() == [99, 27, 28, 29, 4]


def test_span_corrupt_literal_three_spans():
    out = span_corrupt(np.arange(10, 30), example_rng(3), sentinels=SP.sentinels, eos=4, noise_density=0.3, mean_span=2)
    # round(0.3 × 20) = 6 noise tokens in round(6 / 2) = 3 spans: {13}, {24 25 26}, {28 29}
    assert out["input_ids"].tolist() == [10, 11, 12, 99, *range(14, 24), 98, 27, 97, 4]
    assert out["labels"].tolist() == [99, 13, 98, 24, 25, 26, 97, 28, 29, 4]


def _t5_reconstruct(inputs, labels, sentinels):
    """Interleave the input runs (split at sentinels) with the target spans (split at sentinels)."""
    is_sent_in, is_sent_lab = np.isin(inputs[:-1], sentinels), np.isin(labels[:-1], sentinels)
    runs = np.split(inputs[:-1], np.flatnonzero(is_sent_in))
    spans = np.split(labels[:-1], np.flatnonzero(is_sent_lab))[1:]
    assert inputs[np.flatnonzero(is_sent_in)].tolist() == labels[np.flatnonzero(is_sent_lab)].tolist()
    pieces = [runs[0]]
    for run, span in zip(runs[1:], spans, strict=True):
        pieces += [span[1:], run[1:]]
    return np.concatenate(pieces)


def test_span_corrupt_round_trip_and_exact_lengths():
    gen = np.random.default_rng(0)
    sentinels = np.arange(200, 300)[::-1]
    for seed in range(30):
        chunk = gen.integers(10, 190, 568)
        out = span_corrupt(chunk, example_rng(seed), sentinels=sentinels, eos=4)
        assert out["input_ids"].size == 512 and out["labels"].size == 114
        assert out["input_ids"][-1] == 4 and out["labels"][-1] == 4
        assert np.array_equal(_t5_reconstruct(out["input_ids"], out["labels"], sentinels), chunk)
        k = int(np.isin(out["input_ids"], sentinels).sum())
        assert out["input_ids"][np.isin(out["input_ids"], sentinels)].tolist() == sentinels[:k].tolist()
    for length in (1, 2, 3, 17, 141):  # a split's last, shorter chunk
        chunk = np.arange(length) + 10
        out = span_corrupt(chunk, example_rng(length), sentinels=sentinels, eos=4)
        assert np.array_equal(_t5_reconstruct(out["input_ids"], out["labels"], sentinels), chunk)
    assert span_corrupt([10], example_rng(0), sentinels=sentinels, eos=4)["labels"].tolist() == [299, 10, 4]


def test_span_corrupt_needs_enough_sentinels():
    with pytest.raises(PlmkitError, match="sentinels"):
        span_corrupt(np.arange(10, 80), example_rng(0), sentinels=[99, 98], eos=4)


# ---------------------------------------------------------------- glm


def test_glm_blank_infill_reference_worked_example():
    # data-objectives.md §5.5: [CLS] x1…x6, spans {x3} and {x5 x6}, Part B order (x5 x6, x3)
    x = [1, 11, 12, 13, 14, 15, 16]
    row = glm_blank_infill(x, starts=[3, 5], lengths=[1, 2], order=[1, 0], specials=SP)
    assert row["input_ids"].tolist() == [1, 11, 12, 3, 14, 3, 6, 15, 16, 6, 13]
    assert row["labels"].tolist() == [-100] * 6 + [15, 16, 7, 13, 7]
    assert row["position_ids"].tolist() == [0, 1, 2, 3, 4, 5, 5, 5, 5, 3, 3]
    assert row["block_position_ids"].tolist() == [0] * 6 + [1, 2, 3, 1, 2]
    assert row["sep"] == 6


def test_truncated_poisson_matches_the_reference_weights():
    pmf = truncated_poisson_pmf(3.0, 39)
    assert pmf.size == 39 and abs(pmf.sum() - 1) < 1e-12
    assert np.round(pmf[:5], 3).tolist() == [0.157, 0.236, 0.236, 0.177, 0.106]
    assert abs(float(np.arange(1, 40) @ pmf) - 3.157) < 1e-3


def test_place_spans_literal_and_gaps():
    assert place_spans(np.array([2, 1, 3]), 12, example_rng(1)).tolist() == [2, 5, 8]  # gaps 2, 1, 2, 1
    gen = example_rng(2)
    for _ in range(200):
        lengths = gen.integers(1, 6, size=int(gen.integers(1, 6)))
        region = int(lengths.sum() + lengths.size - 1 + gen.integers(0, 5))
        starts = place_spans(lengths, region, gen)
        ends = starts + lengths
        assert starts[0] >= 0 and ends[-1] <= region and (starts[1:] > ends[:-1]).all()


def test_glm_examples_literal():
    (row,) = glm_examples(np.arange(20, 32), example_rng(5), seq_len=16, specials=SP)
    # 12 tokens need ceil(1.8) = 2 masked; the first Poisson draw, 4, covers 20…23
    assert row["input_ids"].tolist() == [1, 3, *range(24, 32), 4, 6, 20, 21, 22, 23]
    assert row["labels"].tolist() == [-100] * 11 + [20, 21, 22, 23, 7]
    assert row["position_ids"].tolist() == [*range(11), 1, 1, 1, 1, 1]
    assert row["block_position_ids"].tolist() == [0] * 11 + [1, 2, 3, 4, 5]
    assert row["sep"] == 11


def _glm_reconstruct(row):
    """Put each Part B span back at its [MASK] in Part A."""
    sep, ids, pos, labels = row["sep"], row["input_ids"], row["position_ids"], row["labels"]
    pieces = {int(p): [] for p in pos[sep:]}
    for t in range(sep, ids.size):
        if labels[t] != SP.eop:
            pieces[int(pos[t])].append(int(labels[t]))
    text = []
    for i, tok in enumerate(ids[:sep].tolist()):
        text += pieces[i] if i in pieces else [tok]
    assert all(ids[p] == SP.mask for p in pieces)
    return text


def test_glm_round_trip_budget_and_coverage():
    gen = np.random.default_rng(3)
    for seed, (length, seq_len) in enumerate([(1, 8), (2, 8), (7, 8), (30, 16), (500, 64), (3000, 512)]):
        doc = gen.integers(10, 90, length)
        rows = glm_examples(doc, example_rng(seed), seq_len=seq_len, specials=SP)
        texts = [_glm_reconstruct(r) for r in rows]
        assert all(t[0] == SP.cls for t in texts) and texts[-1][-1] == SP.eos
        assert np.concatenate([t[1:] for t in texts[:-1]] + [texts[-1][1:-1]]).tolist() == doc.tolist()
        for row, text in zip(rows, texts, strict=True):
            sep, n = row["sep"], row["input_ids"].size
            assert n <= seq_len and (row["labels"][:sep] == -100).all() and (row["labels"][sep:] != -100).all()
            assert (row["block_position_ids"][:sep] == 0).all() and (row["position_ids"][:sep] == np.arange(sep)).all()
            window = len(text) - 1 - (text[-1] == SP.eos)  # text tokens, without [CLS] / [EOS]
            masked = (n - sep) - int((row["input_ids"][:sep] == SP.mask).sum())  # |B| = Σ (span + 1)
            assert masked >= np.ceil(0.15 * window)
            assert not np.any((row["input_ids"][: sep - 1] == SP.mask) & (row["input_ids"][1:sep] == SP.mask))


def test_glm_every_document_ends_with_exactly_one_eos_whatever_its_length():
    """Regression: a document whose last stretch exactly filled a row's text window (seq_len − 1 −
    2 × spans tokens) used to end without its EOS. Sweep lengths across several row boundaries."""
    for length in range(1, 120):
        for seed in range(3):
            rows = glm_examples(np.arange(length) % 80 + 10, example_rng(seed, length), seq_len=16, specials=SP)
            texts = [_glm_reconstruct(r) for r in rows]
            assert [t[-1] == SP.eos for t in texts] == [False] * (len(texts) - 1) + [True], (length, seed)
            assert sum(len(t) - 1 for t in texts) == length + 1  # every token once, plus the EOS


def test_glm_rejects_a_too_short_seq_len():
    with pytest.raises(PlmkitError, match="--seq-len"):
        glm_examples(np.arange(10, 20), example_rng(0), seq_len=6, specials=SP)


# ---------------------------------------------------------------- clm


def test_clm_packing_literal():
    docs = [[10, 11, 12], [13, 14], [15, 16, 17, 18]]
    assert [b.tolist() for b in pack_documents(docs, 4, SP)] == [[10, 11, 12, 4], [13, 14, 4, 15], [16, 17, 18, 4]]
    with_bos = pack_documents(docs, 5, SP, bos=True)
    assert [b.tolist() for b in with_bos] == [[5, 10, 11, 12, 4], [5, 13, 14, 4, 5], [15, 16, 17, 18, 4]]
    assert [b.tolist() for b in pack_documents(docs[:2], 3, SP)] == [[10, 11, 12], [4, 13, 14], [4]]
    packer = ClmPacker(3, SP)
    rows = [r for d in docs[:2] for r in packer.add(d)] + packer.finish(drop_remainder=True)
    assert [r["input_ids"].tolist() for r in rows] == [[10, 11, 12], [4, 13, 14]] and packer.dropped == 1


def test_clm_blocks_concatenate_to_the_stream():
    gen = np.random.default_rng(0)
    docs = [gen.integers(10, 90, int(n)) for n in gen.integers(0, 40, size=200)]
    for seq_len in (1, 7, 64, 10_000):
        blocks = pack_documents(docs, seq_len, SP)
        assert all(b.size == seq_len for b in blocks[:-1]) and 0 < blocks[-1].size <= seq_len
        assert np.array_equal(np.concatenate(blocks), np.concatenate([clm_document(d, SP) for d in docs]))


def test_block_packer_carries_the_remainder():
    p = BlockPacker(4)
    assert p.add([1, 2, 3]) == [] and p.pending == 3
    assert [b.tolist() for b in p.add([4, 5, 6, 7, 8, 9, 10, 11, 12])] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]
    assert p.pending == 0 and p.finish() == []


# ---------------------------------------------------------------- determinism


def _all_objectives(doc_index: int, doc: np.ndarray, sentences: list[np.ndarray], seed: int = 11) -> list[dict]:
    rng = lambda tag: example_rng(seed, tag, doc_index)  # noqa: E731
    rows = [mlm_example(s, rng(0), SP, MaskSpec(ngram=3), np.ones(100, bool)) for s in mlm_segments(doc, 16, SP)]
    rows += nsp_examples(sentences, rng(1), seq_len=24, specials=SP)
    rows += sop_examples(sentences, rng(2), seq_len=24, specials=SP)
    rows += [span_corrupt(doc, rng(3), sentinels=SP.sentinels, eos=SP.eos)]
    rows += glm_examples(doc, rng(4), seq_len=24, specials=SP)
    return rows


def test_same_seed_same_rows_in_any_processing_order():
    gen = np.random.default_rng(9)
    docs = [gen.integers(10, 90, int(n)) for n in gen.integers(5, 60, size=12)]
    sents = [np.split(d, np.sort(gen.choice(np.arange(1, d.size), min(3, d.size - 1), replace=False))) for d in docs]
    forward = [_all_objectives(i, d, s) for i, (d, s) in enumerate(zip(docs, sents, strict=True))]
    backward = [_all_objectives(i, docs[i], sents[i]) for i in reversed(range(len(docs)))][::-1]
    assert all(rows_equal(f, b) for f, b in zip(forward, backward, strict=True))
    other_seed = [_all_objectives(i, d, s, seed=12) for i, (d, s) in enumerate(zip(docs, sents, strict=True))]
    assert not all(rows_equal(f, o) for f, o in zip(forward, other_seed, strict=True))
