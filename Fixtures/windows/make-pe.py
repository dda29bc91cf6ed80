#!/usr/bin/env python3
"""Writes a minimal PE32+ (x86-64) or PE32 (i386) console executable header to the path given: what `file` reads to
name a Windows binary's architecture, as libguestfs's inspection does with %SYSTEMROOT%/System32/cmd.exe."""
import struct
import sys


def main(path: str, arch: str) -> None:
    machine, magic, optional_size = {"x86_64": (0x8664, 0x20B, 240), "i386": (0x14C, 0x10B, 224)}[arch]
    dos = bytearray(0x80)
    dos[0:2] = b"MZ"
    struct.pack_into("<I", dos, 0x3C, 0x80)
    coff = struct.pack("<4sHHIIIHH", b"PE\0\0", machine, 1, 0, 0, 0, optional_size, 0x0022)
    optional = bytearray(optional_size)
    struct.pack_into("<H", optional, 0, magic)
    subsystem_offset = 68  # the same in PE32 and PE32+
    struct.pack_into("<H", optional, subsystem_offset, 3)  # IMAGE_SUBSYSTEM_WINDOWS_CUI
    section = struct.pack("<8sIIIIIIHHI", b".text", 0x1000, 0x1000, 0x200, 0x200, 0, 0, 0, 0, 0x60000020)
    image = bytes(dos) + coff + bytes(optional) + section
    image += b"\0" * (0x400 - len(image))
    with open(path, "wb") as out:
        out.write(image)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in ("x86_64", "i386"):
        sys.exit("usage: make-pe.py PATH x86_64|i386")
    main(sys.argv[1], sys.argv[2])
