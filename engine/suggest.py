""""Did you mean": the known names nearest to one a caller typed (a field name, a model id).

Distance is Levenshtein's (insertions, deletions, substitutions each count one), bounded so that a wild name
costs little: names whose lengths differ by more than the bound are never compared.
"""

from __future__ import annotations

from typing import Iterable

FIELD_TYPO_EDITS = 2      # a field within this many edits of a known one is probably that one misspelt
MODEL_SUGGESTIONS = 3     # model ids listed with a model_not_found
MAX_COMPARED_CHARS = 128  # longer names are cut before comparing (a name is never this long on purpose)


def distance(a: str, b: str, bound: int) -> int:
    """Edit distance between a and b, or bound + 1 when it is larger than bound."""
    a, b = a[:MAX_COMPARED_CHARS], b[:MAX_COMPARED_CHARS]
    if abs(len(a) - len(b)) > bound:
        return bound + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > bound:
            return bound + 1
        previous = current
    return min(previous[-1], bound + 1)


def nearest(name: str, known: Iterable[str], bound: int = FIELD_TYPO_EDITS, limit: int = 1) -> list[str]:
    """Up to `limit` known names within `bound` edits of `name` (case-insensitive), nearest first."""
    lowered = name.lower()
    scored = sorted((d, k) for k in set(known) if k != name
                    for d in [distance(lowered, k.lower(), bound)] if d <= bound)
    return [k for _, k in scored[:limit]]


def nearest_models(name: str, ids: Iterable[str], limit: int = MODEL_SUGGESTIONS) -> list[str]:
    """Model ids close to `name`: ones it begins (or that begin it), ones within a third of its length in
    edits, then ones sharing its first word; nearest first."""
    n = name.lower()[:MAX_COMPARED_CHARS]
    head = n.split("-")[0]
    bound = max(2, len(n) // 3)
    scored = []
    for i in set(ids):
        low = i.lower()
        prefix = bool(n) and (low.startswith(n) or n.startswith(low))
        d = distance(n, low, MAX_COMPARED_CHARS)
        if prefix or d <= bound or (head and low.split("-")[0] == head):
            scored.append((not prefix, d, i))
    return [i for *_, i in sorted(scored)[:limit]]
