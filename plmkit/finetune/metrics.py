"""Scores of a fine-tuned model: accuracy, macro-F1, token F1, entity F1, confusion matrix.

Pure functions of gold and predicted label ids (or tag strings); no torch. Conventions follow
scikit-learn and conlleval, so figures can be compared with what users already know:

- `macro_f1` averages the per-label F1 over the labels that occur in gold or in predictions
  (scikit-learn's `f1_score(average="macro")`); a label with no true positive scores 0.
- `token_prf` counts words whose gold or predicted tag is not the outside tag "O"; without an
  "O" in the label set every word counts, and precision = recall = accuracy.
- `entity_prf` compares BIO spans exactly (type, first word, last word), like conlleval.
"""

from __future__ import annotations

from collections.abc import Sequence

OUTSIDE = "O"


def accuracy(gold: Sequence[int], pred: Sequence[int]) -> float:
    """>>> accuracy([0, 1, 1, 2], [0, 1, 2, 2])
    0.75
    """
    assert len(gold) == len(pred)
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / max(1, len(gold))


def confusion_matrix(gold: Sequence[int], pred: Sequence[int], num_labels: int) -> list[list[int]]:
    """counts[g][p]: examples of gold label g predicted as p.

    >>> confusion_matrix([0, 0, 1, 1], [0, 1, 1, 1], 2)
    [[1, 1], [0, 2]]
    """
    counts = [[0] * num_labels for _ in range(num_labels)]
    for g, p in zip(gold, pred, strict=True):
        counts[g][p] += 1
    return counts


def f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """(precision, recall, F1); 0 where the denominator is 0."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    score = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, score


def per_label_f1(counts: list[list[int]]) -> list[float | None]:
    """F1 of each label from a confusion matrix; None for a label absent from gold and predictions."""
    k = len(counts)
    out: list[float | None] = []
    for i in range(k):
        tp = counts[i][i]
        fn = sum(counts[i]) - tp
        fp = sum(counts[g][i] for g in range(k)) - tp
        out.append(None if tp + fn + fp == 0 else f1(tp, fp, fn)[2])
    return out


def macro_f1(gold: Sequence[int], pred: Sequence[int], num_labels: int) -> float:
    """Mean F1 over the labels present in gold or predictions.

    >>> round(macro_f1([0, 0, 1, 1], [0, 1, 1, 1], 3), 4)   # label 0: F1 2/3, label 1: F1 0.8, label 2 absent
    0.7333
    """
    scores = [s for s in per_label_f1(confusion_matrix(gold, pred, num_labels)) if s is not None]
    return sum(scores) / len(scores) if scores else 0.0


def token_prf(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Word-level precision, recall and F1 over the words not tagged "O" (in gold or prediction).

    >>> token_prf([["O", "NUM", "CAP"]], [["NUM", "NUM", "O"]])["f1"]   # tp 1, fp 1, fn 1
    0.5
    """
    labels = {t for seq in gold for t in seq} | {t for seq in pred for t in seq}
    outside = OUTSIDE if OUTSIDE in labels else None
    tp = fp = fn = 0
    for g_seq, p_seq in zip(gold, pred, strict=True):
        for g, p in zip(g_seq, p_seq, strict=True):
            if g == p:
                tp += g != outside
            else:
                fp += p != outside
                fn += g != outside
    precision, recall, score = f1(tp, fp, fn)
    return {"precision": precision, "recall": recall, "f1": score}


def _split_tag(tag: str) -> tuple[str, str | None]:
    """("B", "PER") for B-PER; ("I", "X") for I-X and for a bare tag X (IO scheme); ("O", None) for O."""
    if tag == OUTSIDE:
        return "O", None
    if len(tag) > 2 and tag[1] == "-" and tag[0] in "BI":
        return tag[0], tag[2:]
    return "I", tag


def entity_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, start, end) spans (end exclusive) of a BIO sequence, as conlleval reads it: an I-X
    after anything but B-X/I-X opens a new entity; a bare tag X is I-X (so runs of X are one entity).

    >>> entity_spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-PER", "NUM", "NUM"])
    [('PER', 0, 2), ('LOC', 3, 4), ('LOC', 4, 5), ('PER', 5, 6), ('NUM', 6, 8)]
    """
    spans, start, kind = [], None, None
    for i, tag in enumerate([*tags, OUTSIDE]):
        prefix, typ = _split_tag(tag)
        continues = prefix == "I" and typ == kind
        if start is not None and not continues:
            spans.append((kind, start, i))
            start, kind = None, None
        if typ is not None and not continues:
            start, kind = i, typ
    return spans


def entity_prf(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Exact-match span precision, recall and F1 over all sentences.

    >>> entity_prf([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])["f1"]   # boundary wrong: no match
    0.0
    """
    tp = n_gold = n_pred = 0
    for g_seq, p_seq in zip(gold, pred, strict=True):
        g_spans, p_spans = set(entity_spans(g_seq)), set(entity_spans(p_seq))
        tp += len(g_spans & p_spans)
        n_gold += len(g_spans)
        n_pred += len(p_spans)
    precision, recall, score = f1(tp, n_pred - tp, n_gold - tp)
    return {"precision": precision, "recall": recall, "f1": score}
