"""Rebuilds a Footprint result JSON from the long-form rows of its SQL
translation: (path, num, text), one row per leaf. Same rules as the Rust
`footprint_query::sql::rebuild` (see docs/SQL.md)."""
import re

_PART = re.compile(r"\[(\d*)\]|\.?([^.\[\]]+)")


def rebuild(rows):
    root = {}
    for path, num, text in rows:
        parts = [int(i) if i else ("[]" if k is None else k)
                 for i, k in ((m.group(1), m.group(2)) for m in _PART.finditer(path))]
        if text is not None and num is not None:
            value = num != 0  # a boolean
        elif text is not None:
            value = text
        elif num is not None and float(num).is_integer() and abs(num) < 9e15:
            value = int(num)
        else:
            value = num
        node = root
        for i, part in enumerate(parts):
            if part == "[]":
                break
            nxt = parts[i + 1] if i + 1 < len(parts) else None
            if isinstance(part, int):
                node.extend([None] * (part + 1 - len(node)))
            elif part not in node:
                node[part] = None
            if nxt is None:
                node[part] = value
            elif node[part] is None:
                node[part] = {} if isinstance(nxt, str) and nxt != "[]" else []
            node = node[part]
    return root
