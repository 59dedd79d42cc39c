#!/usr/bin/env python3
"""Compares two 8-bit PNG files pixel by pixel (standard library only):

    png_diff.py A.png B.png [--max-levels N]     (default N = 1)

Prints the size, the largest difference in levels and how many values differ; exits 1 when the sizes or
channel counts differ or a difference exceeds N, 2 on an unreadable file."""
import argparse
import struct
import sys
import zlib


def decode(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    if depth != 8 or interlace != 0 or color not in (0, 2, 4, 6):
        raise ValueError(f"{path}: only 8-bit non-interlaced gray/RGB(A) PNGs are read")
    channels = {0: 1, 4: 2, 2: 3, 6: 4}[color]
    raw, stride = zlib.decompress(idat), width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(line))
        previous = line
    return width, height, channels, b"".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--max-levels", type=int, default=1)
    args = parser.parse_args()
    try:
        a, b = decode(args.a), decode(args.b)
    except (OSError, ValueError, zlib.error, struct.error, TypeError) as e:
        print(f"png_diff.py: {e}", file=sys.stderr)
        return 2
    if a[:3] != b[:3]:
        print(f"png_diff.py: {args.a} is {a[0]}x{a[1]}x{a[2]}, {args.b} is {b[0]}x{b[1]}x{b[2]}")
        return 1
    diffs = [abs(x - y) for x, y in zip(a[3], b[3])]
    worst, differing = max(diffs), sum(1 for d in diffs if d)
    print(f"{a[0]}x{a[1]}x{a[2]}: largest difference {worst} levels, {differing} of {len(diffs)} values differ")
    return 0 if worst <= args.max_levels else 1


if __name__ == "__main__":
    sys.exit(main())
