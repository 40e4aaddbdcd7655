"""Drop named top-level members of a JSON reply while it arrives, so they are never held or parsed.

Some providers echo the whole request back in every reply: a job's status reply carries its `input`, which
for an edit sent as data: URLs is the images again — 250 MB read, held and parsed on every poll. An
operation that declares `reply_skip: [input]` gets those members' values replaced by `null` as the bytes
arrive: only the rest of the reply is kept and parsed. The scan runs on the event loop, chunk by chunk,
and does no per-byte Python work inside strings (it jumps between quotes and backslashes with
`bytes.find`), so a 250 MB echo of base64 costs a few finds per 64 KiB chunk.

Only members of a top-level object are skipped; a reply whose top level is anything else passes whole.
The scanner follows JSON's structure, not its grammar: a malformed reply stays malformed (the parser
after it says so), never silently repaired.
"""

from __future__ import annotations

import re

_STRUCTURE = re.compile(rb'["{}\[\],:]')   # outside strings, the bytes that change the scanner's state
MAX_KEY_BYTES = 256                        # a longer top-level key is kept whatever it says (no skip name is this long)


class ReplySkipper:
    """Feed the reply's chunks in order; each call returns the bytes to keep. Skipped values come out as
    `null`, so the kept bytes are the same JSON with those members emptied."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = frozenset(n.encode() for n in names)
        self.depth = 0               # containers open around the current position
        self.in_string = False
        self.escaped = False         # the previous byte inside a string was a backslash
        self.expect_key = False      # the next string at depth 1 is a member name
        self.key: bytearray | None = None  # the member name being read (depth 1), up to MAX_KEY_BYTES
        self.key_done: bytes | None = None  # a member name read, waiting for its ':'
        self.skipping = False        # inside a skipped value
        self.skip_depth = 0          # containers opened inside the skipped value
        self.top_object: bool | None = None  # unknown until the first structural byte says whether the top is an object

    def feed(self, chunk: bytes) -> bytes:
        out = bytearray()
        kept_from = 0                # start of the run of `chunk` kept since the last change of state
        i, n = 0, len(chunk)
        while i < n:
            if self.in_string:
                i = self._string(chunk, i)
                continue
            m = _STRUCTURE.search(chunk, i)
            if m is None:
                break
            j = m.start()
            c = chunk[j]
            if self.skipping:
                if c == 0x22:                      # '"'
                    self.in_string = True
                    i = j + 1
                    continue
                if c in (0x7B, 0x5B):              # '{' '['
                    self.skip_depth += 1
                elif c in (0x7D, 0x5D):            # '}' ']'
                    if self.skip_depth == 0:       # the object around the skipped member closes: value ended
                        self._end_skip()
                        kept_from = j
                        self.depth -= 1
                    else:
                        self.skip_depth -= 1
                elif c == 0x2C and self.skip_depth == 0:  # ',' after a scalar or container value
                    self._end_skip()
                    kept_from = j
                    self.expect_key = self.depth == 1
                i = j + 1
                continue
            if c == 0x22:
                self.in_string = True
                if self.depth == 1 and self.expect_key and self.top_object:
                    self.key = bytearray()
                i = j + 1
                continue
            if c in (0x7B, 0x5B):
                if self.top_object is None:
                    self.top_object = c == 0x7B
                self.depth += 1
                self.expect_key = self.depth == 1 and c == 0x7B
            elif c in (0x7D, 0x5D):
                self.depth -= 1
                self.expect_key = False
            elif c == 0x2C:
                self.expect_key = self.depth == 1 and bool(self.top_object)
            elif c == 0x3A and self.key_done is not None:  # ':' after a member name
                skip = self.key_done in self.names
                self.key_done = None
                if skip:
                    out += chunk[kept_from:j + 1]
                    out += b"null"
                    self.skipping, self.skip_depth = True, 0
                    i = j + 1
                    kept_from = n          # nothing more of this chunk is kept unless the skip ends
                    continue
            if self.top_object is None and c != 0x22:
                self.top_object = False
            i = j + 1
        if self.skipping:
            return bytes(out)
        if not out:
            return chunk[kept_from:] if kept_from else chunk   # nothing skipped here: no copy
        out += chunk[kept_from:]
        return bytes(out)

    def _string(self, chunk: bytes, i: int) -> int:
        """Advance through string content from `i`; returns where scanning goes on."""
        n = len(chunk)
        if self.escaped:                       # the byte after a backslash, whatever it is
            self.escaped = False
            if self.key is not None:
                self._key_bytes(chunk[i:i + 1])
            return i + 1
        q = chunk.find(b'"', i)
        end = n if q == -1 else q
        b = chunk.find(b"\\", i, end)
        if b != -1:                            # an escape before the closing quote: step over it
            if self.key is not None:
                self._key_bytes(chunk[i:b + 1])
            self.escaped = True
            return b + 1
        if self.key is not None:
            self._key_bytes(chunk[i:end])
        if q == -1:
            return n
        self.in_string = False
        if self.key is not None:
            self.key_done = bytes(self.key) if len(self.key) <= MAX_KEY_BYTES else None
            self.key = None
            self.expect_key = False
        return q + 1

    def _key_bytes(self, data: bytes) -> None:
        assert self.key is not None
        if len(self.key) <= MAX_KEY_BYTES:
            self.key += data[:MAX_KEY_BYTES + 1 - len(self.key)]

    def _end_skip(self) -> None:
        self.skipping = False
