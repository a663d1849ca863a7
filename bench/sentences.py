"""Sentence splitting: plmkit's rules against sentencex, pysbd and blingfire, in one run.

Quality: CASES below, tricky English and Chinese lines with the split a reader expects.
Speed: sentences/s and MB/s over English prose (Gutenberg paragraphs, hard-wrapped lines
joined) and Chinese prose (Hongloumeng), about 2 MB each by default; median of 3 repeats.
Libraries that are not installed are skipped (`pip install sentencex pysbd blingfire`).

    python bench/sentences.py [--mb 2] [--repeats 3]

Measured 2026-11-28 on the shared 2-core box at load average ~7 (very noisy: three runs,
ranges given; the ratios within one run are what count):

    quality (26 cases)  plmkit 26/26   sentencex 24/26   pysbd 22/26   blingfire 18/26
    English 2 MB        plmkit 10-35 MB/s   sentencex 1.05-1.96x that   blingfire 0.10-0.36x   pysbd 0.004x
    Chinese 2 MB        plmkit 33-35 MB/s   sentencex 0.23-0.38x        blingfire 0.07-0.28x   pysbd 0.01x

Caveats: the cases were written with plmkit's rules in mind (two of them, `．` and `（…。）`,
came from reading the Hongloumeng text once the rules existed); for the two where Chinese
conventions differ both answers count. Not in the score: sentencex keeps a quotation of
several sentences whole ("Yes. What have you got?" asked she.), so on Gutenberg it returns
~25% fewer, longer sentences than plmkit.

(see `plmkit.corpus.split_sentences` for the decision these figures support.)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# bench/ must not be on the import path: its tokenize.py would shadow the standard library's.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from plmkit.corpus import split_sentences  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"

# (line, the sentences a careful reader would cut it into). Where conventions differ (Chinese
# quoted speech followed by its speech tag), a case lists every acceptable answer.
CASES: list[tuple[str, list[str] | tuple[list[str], ...]]] = [
    ("Dr. Smith went to Washington. He arrived on Monday.", ["Dr. Smith went to Washington.", "He arrived on Monday."]),
    ("The U.S. economy grew, e.g. in exports. Prices fell.", ["The U.S. economy grew, e.g. in exports.", "Prices fell."]),
    ("Pi is about 3.14. It never ends.", ["Pi is about 3.14.", "It never ends."]),
    ("It costs $3.50. That is cheap!", ["It costs $3.50.", "That is cheap!"]),
    ('She said, "It works." Then she left.', ['She said, "It works."', "Then she left."]),
    ('He asked "Why not?" and walked off.', ['He asked "Why not?" and walked off.']),
    ("“Stop!” she cried. Nobody moved.", ["“Stop!” she cried.", "Nobody moved."]),
    ("See Fig. 2 for the loss. It falls fast.", ["See Fig. 2 for the loss.", "It falls fast."]),
    ("Mr. and Mrs. Brown came at noon. They left early.", ["Mr. and Mrs. Brown came at noon.", "They left early."]),
    ("J. R. R. Tolkien wrote it. It is long.", ["J. R. R. Tolkien wrote it.", "It is long."]),
    ("Wait... What happened? Nobody knew!", ["Wait...", "What happened?", "Nobody knew!"]),
    ("Models (e.g. GPT-2) are big. BERT is smaller.", ["Models (e.g. GPT-2) are big.", "BERT is smaller."]),
    ("He moved to St. Louis in 1990. In 2000 he left.", ["He moved to St. Louis in 1990.", "In 2000 he left."]),
    ("Use version 2.0.1 now. Older ones fail.", ["Use version 2.0.1 now.", "Older ones fail."]),
    ("The meeting is at 5 p.m. on Friday. Be there.", ["The meeting is at 5 p.m. on Friday.", "Be there."]),
    ("Prof. Lee (MIT) spoke. Dr. Wu replied.", ["Prof. Lee (MIT) spoke.", "Dr. Wu replied."]),
    ("今天天气很好。我们去公园吧！你去吗？", ["今天天气很好。", "我们去公园吧！", "你去吗？"]),
    ("他说：“我不去。”然后就走了。", ["他说：“我不去。”", "然后就走了。"]),
    ("「你好！」她笑着说。", (["「你好！」她笑着说。"], ["「你好！」", "她笑着说。"])),
    ("这是第一句；这是第二句。", ["这是第一句；这是第二句。"]),
    ("版本3.14已经发布。请及时更新（如果需要的话。）谢谢！", ["版本3.14已经发布。", "请及时更新（如果需要的话。）", "谢谢！"]),
    ("BERT是一个模型。It was released in 2018. 很有名！", ["BERT是一个模型。", "It was released in 2018.", "很有名！"]),
    ("真的吗?我不信!", ["真的吗?", "我不信!"]),
    ("拜见过王夫人．王夫人便问他。圆周率约为３．１４。", ["拜见过王夫人．", "王夫人便问他。", "圆周率约为３．１４。"]),
    ("《红楼梦》是小说。“宝玉呢？”黛玉问道。",
     (["《红楼梦》是小说。", "“宝玉呢？”黛玉问道。"], ["《红楼梦》是小说。", "“宝玉呢？”", "黛玉问道。"])),
    ("第一行。\n第二行没有句号\nThird line. Fourth.", ["第一行。", "第二行没有句号", "Third line.", "Fourth."]),
]


def splitters() -> dict[str, Callable[[str], list[str]]]:
    """Every splitter that is importable here, as text -> stripped sentences (lines first)."""
    found: dict[str, Callable[[str], list[str]]] = {"plmkit": split_sentences}
    try:
        import sentencex

        found["sentencex"] = _per_line(lambda line: sentencex.segment("en", line))
    except ImportError:
        print("sentencex: not installed, skipped")
    try:
        import pysbd

        seg = pysbd.Segmenter(language="en", clean=False)
        zh = pysbd.Segmenter(language="zh", clean=False)
        found["pysbd"] = _per_line(lambda line: (zh if _has_cjk(line) else seg).segment(line))
    except ImportError:
        print("pysbd: not installed, skipped")
    try:
        import blingfire

        found["blingfire"] = _per_line(lambda line: blingfire.text_to_sentences(line).split("\n"))
    except ImportError:
        print("blingfire: not installed, skipped")
    return found


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)


def _per_line(split_line: Callable[[str], list[str]]) -> Callable[[str], list[str]]:
    """Give a library the same contract as plmkit: lines are the first split."""

    def split(text: str) -> list[str]:
        return [s.strip() for line in text.split("\n") if line.strip() for s in split_line(line.strip()) if s.strip()]

    return split


def quality(name: str, split: Callable[[str], list[str]], verbose: bool) -> int:
    right = 0
    for text, expected in CASES:
        got = split(text)
        ok = got in expected if isinstance(expected, tuple) else got == expected
        right += ok
        if verbose and not ok:
            print(f"  {name} on {text!r}: {got}")
    return right


def english_paragraphs(mb: float) -> list[str]:
    """Gutenberg prose: blank-line paragraphs with their hard-wrapped lines joined into one."""
    raw = (SHARED / "gutenberg_en_100mb.txt").read_bytes()[: int(mb * 1e6)].decode("utf-8", "ignore")
    return [" ".join(p.split()) for p in raw.split("\n\n") if p.strip()]


def chinese_paragraphs(mb: float) -> list[str]:
    text = (SHARED / "zh_hongloumeng.txt").read_bytes().decode("utf-8", "ignore").replace("\r\n", "\n")
    paragraphs = [p.strip() for p in text.split("\n") if p.strip()]
    out, size = [], 0
    while size < mb * 1e6:  # the novel is 2.5 MB; repeat it for larger slices
        for p in paragraphs:
            out.append(p)
            size += len(p.encode())
            if size >= mb * 1e6:
                break
    return out


def speed(split: Callable[[str], list[str]], paragraphs: list[str], repeats: int) -> tuple[float, float]:
    """(MB/s, sentences/s), medians over `repeats` passes."""
    mb = sum(len(p.encode()) for p in paragraphs) / 1e6
    times, count = [], 0
    for _ in range(repeats):
        t = time.perf_counter()
        count = sum(len(split(p)) for p in paragraphs)
        times.append(time.perf_counter() - t)
    median = statistics.median(times)
    return mb / median, count / median


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=2.0, help="megabytes of each language to split")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--verbose", action="store_true", help="print every case a splitter gets wrong")
    args = ap.parse_args(argv)
    found = splitters()
    print(f"quality ({len(CASES)} cases): "
          + "   ".join(f"{n} {quality(n, s, args.verbose)}/{len(CASES)}" for n, s in found.items()))
    if not SHARED.is_dir():
        sys.exit(f"speed: {SHARED} not found (the benchmark corpora live in ../shared/corpora)")
    for lang, paragraphs in (("English", english_paragraphs(args.mb)), ("Chinese", chinese_paragraphs(args.mb))):
        figures = {n: speed(s, paragraphs, args.repeats) for n, s in found.items()}
        base = figures["plmkit"][0]
        print(f"{lang} {args.mb:g} MB: " + "   ".join(
            f"{n} {mbs:.1f} MB/s ({sps / 1e3:.0f}k sent/s, {mbs / base:.2f}x)" for n, (mbs, sps) in figures.items()))


if __name__ == "__main__":
    main()
