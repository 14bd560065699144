"""A plain-text table for the tools' summaries: every column but the last padded to its widest
cell, two spaces apart (the last, free text, as it is)."""


def aligned(head, rows):
    # head and each row: tuples of str -> the lines
    n = len(head) - 1
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(n)]
    return ["  ".join([r[i].ljust(widths[i]) for i in range(n)] + [r[n]]) for r in [head] + rows]
