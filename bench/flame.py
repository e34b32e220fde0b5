"""A text summary of a py-spy profile (``py-spy record -f raw``: one "frame;frame;... count" line per stack).

    .venv/bin/python bench/flame.py profile.txt [--top 25] [--match ingest.commit --match delivery]

Prints the share of samples in which each function is on the stack (inclusive) and at the top (self), by
``function (file)``, busiest first; ``--match`` adds the inclusive share of any frame containing the text.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    file = m.group("file")
    parts = file.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else file
    return f"{m.group('func')} ({short})"


def summarize(lines: list[str], top: int = 25, matches: list[str] | None = None) -> str:
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    matched: Counter[str] = Counter()
    for line in lines:
        line = line.rstrip()
        if not line or " " not in line:
            continue
        stack, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        names = [frame_name(f) for f in frames]
        for name in set(names):
            inclusive[name] += count
        own[names[-1]] += count
        for m in matches or []:
            if any(m in f for f in frames):
                matched[m] += count
    if not total:
        return "no samples"
    out = [f"{total} samples"]
    if matches:
        out.append("matched (inclusive):")
        out += [f"  {100 * matched[m] / total:5.1f}%  {m}" for m in matches]
    out.append("inclusive (on the stack):")
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    out.append("self (at the top):")
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", action="append", default=[])
    args = parser.parse_args()
    print(summarize(args.profile.read_text().splitlines(), args.top, args.match))


if __name__ == "__main__":
    main()
