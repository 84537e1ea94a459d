"""A seeded train/val/test split of detection images that keeps every class in every split when
the data allows it.

An image holds several classes, so this is a multi-label stratification: scikit-learn's
``train_test_split(stratify=...)`` and ``StratifiedShuffleSplit`` take one label per sample and have
no multi-label counterpart, and the known algorithm (iterative stratification, Sechidis, Tsoumakas
and Vlahavas, ECML PKDD 2011) lives in scikit-multilearn, an unmaintained package that headstart
does not depend on. The few lines below follow it, plus a first pass that guarantees coverage:

1. *Coverage.* For each class, rarest first, each split that has no image of it yet receives one
   (the image that covers the most classes still missing there), as long as training keeps one.
2. *Proportions.* Then, rarest class first, each remaining image of the class goes to the split
   that still wants the most images of that class (ties: the split that wants the most images).
3. *Background images* (no box) are shuffled and spread in proportion to the fractions.

Deterministic: the only randomness is :class:`random.Random` seeded with ``seed``.
"""

from __future__ import annotations

import random
from typing import Collection, Mapping, Sequence

__all__ = ["stratified_box_split"]


def _name(label: int, class_names: Sequence[str] | None) -> str:
    return repr(class_names[label]) if class_names is not None else str(label)


def stratified_box_split(
    label_sets: Sequence[Collection[int]],
    fractions: Mapping[str, float],
    seed: int = 0,
    class_names: Sequence[str] | None = None,
) -> tuple[dict[str, list[int]], list[str]]:
    """Split positions ``0..len(label_sets)-1`` into ``'train'`` and the splits of ``fractions``.

    ``label_sets[i]`` is the set of classes with a box in image ``i`` (empty for a background
    image). ``fractions`` maps ``'val'`` / ``'test'`` to their share of all the images; splits with
    a fraction of 0 are left out, and train gets the rest. Returns ``(sorted positions per split,
    notes)``; the notes name every class that could not be put in every split.
    """
    splits = ["train"] + [s for s in ("val", "test") if float(fractions.get(s, 0)) > 0]
    share = {s: float(fractions[s]) for s in splits[1:]}
    share["train"] = max(0.0, 1.0 - sum(share.values()))
    rng = random.Random(seed)
    sets = [frozenset(x) for x in label_sets]
    positives = [i for i, s in enumerate(sets) if s]
    negatives = [i for i, s in enumerate(sets) if not s]
    rng.shuffle(positives)
    members: dict[int, list[int]] = {}
    for i in positives:
        for c in sets[i]:
            members.setdefault(c, []).append(i)
    total = {c: len(m) for c, m in members.items()}
    want = {s: {c: share[s] * n for c, n in total.items()} for s in splits}
    want_images = {s: share[s] * len(positives) for s in splits}
    where: dict[int, str] = {}
    has: dict[str, set[int]] = {s: set() for s in splits}

    def assign(i: int, split: str) -> None:
        where[i] = split
        want_images[split] -= 1
        for c in sets[i]:
            want[split][c] -= 1
            has[split].add(c)

    rarest = sorted(members, key=lambda c: (total[c], c))
    for c in rarest:  # 1. coverage
        for split in splits:
            if c in has[split]:
                continue
            free = [i for i in members[c] if i not in where]
            if not free or (split != "train" and c not in has["train"] and len(free) < 2):
                continue
            best = max(free, key=lambda i: len(sets[i] - has[split]))
            assign(best, split)
    for c in rarest:  # 2. proportions
        for i in members[c]:
            if i in where:
                continue
            split = max(splits, key=lambda s: (want[s][c], want_images[s], -splits.index(s)))
            assign(i, split)
    rng.shuffle(negatives)  # 3. background images
    start = 0
    for split in splits[1:]:
        n = round(share[split] * len(negatives))
        for i in negatives[start : start + n]:
            where[i] = split
        start += n
    for i in negatives[start:]:
        where[i] = "train"

    out = {s: sorted(i for i, sp in where.items() if sp == s) for s in splits}
    notes = []
    for split in splits[1:]:
        missing = [c for c in rarest if c not in has[split]]
        if missing:
            listed = ", ".join(_name(c, class_names) for c in sorted(missing))
            notes.append(
                f"{len(missing)} class(es) have too few images to appear in the {split} split ({listed});"
                f" the {split} split cannot measure them."
            )
        target = share[split] * len(sets)
        if len(out[split]) > max(target * 1.5, target + 2):
            notes.append(
                f"The {split} split has {len(out[split])} images rather than about {round(target)}, to"
                " hold at least one image of each class."
            )
    return out, notes
