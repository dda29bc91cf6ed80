#!/usr/bin/env python3
"""Writes an empty Windows registry hive (a root key and its security record) to the path given, for
hivexregedit --merge to fill from .reg text. Written from the regf layout (a 4 KiB base block, then 4 KiB hbin pages
of cells whose size is negative while used); hivex accepts it and Windows' own loader would too."""
import struct
import sys

PAGE = 0x1000


def cell(body: bytes, used: bool = True) -> bytes:
    size = (4 + len(body) + 7) & ~7
    return struct.pack("<i", -size if used else size) + body + b"\0" * (size - 4 - len(body))


def main(path: str, name: str) -> None:
    root_offset = 0x20                  # cells are addressed from the first hbin page
    root_name = b"ROOT"
    nk_size = (4 + 0x4C + len(root_name) + 7) & ~7
    sk_offset = root_offset + nk_size
    # A self-relative security descriptor with no owner, group or ACLs (revision 1, SE_SELF_RELATIVE).
    descriptor = struct.pack("<BBHIIII", 1, 0, 0x8000, 0, 0, 0, 0)
    nk = struct.pack(
        "<2sHqIIIIIIIIIIHHIIIIHH",
        b"nk", 0x2C, 0, 0, 0, 0, 0, 0xFFFFFFFF, 0xFFFFFFFF, 0, 0xFFFFFFFF, sk_offset, 0xFFFFFFFF,
        0, 0, 0, 0, 0, 0, len(root_name), 0) + root_name
    sk = struct.pack("<2sHIIII", b"sk", 0, sk_offset, sk_offset, 1, len(descriptor)) + descriptor
    cells = cell(nk) + cell(sk)
    assert len(cell(nk)) == nk_size
    hbin_header = struct.pack("<4sII20s", b"hbin", 0, PAGE, b"\0" * 20)
    free = PAGE - len(hbin_header) - len(cells)
    page = hbin_header + cells + struct.pack("<i", free) + b"\0" * (free - 4)
    assert len(page) == PAGE

    encoded_name = name.encode("utf-16-le")[:64]
    base = bytearray(PAGE)
    struct.pack_into("<4sIIqIIIIIII", base, 0, b"regf", 1, 1, 0, 1, 3, 0, 1, root_offset, PAGE, 1)
    base[0x30:0x30 + len(encoded_name)] = encoded_name
    checksum = 0
    for (word,) in struct.iter_unpack("<I", bytes(base[:0x1FC])):
        checksum ^= word
    struct.pack_into("<I", base, 0x1FC, checksum)
    with open(path, "wb") as out:
        out.write(bytes(base) + page)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: make-hive.py PATH NAME")
    main(sys.argv[1], sys.argv[2])
