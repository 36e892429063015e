#!/usr/bin/env python3
"""Extract /fix (sensor_msgs/NavSatFix) from a ROS1 bag (v2.0, bz2/none chunks) to CSV.

Authoring-time generator for crates/v2x/testdata/husky_fix.csv (stdlib only):
    python3 crates/v2x/tools/bag_fixes.py data/fusion/test1.bag > crates/v2x/testdata/husky_fix.csv
Columns: t_s (header stamp), latitude_deg, longitude_deg, altitude_m, status.
"""
import bz2
import struct
import sys


def fields(buf):
    out, i = {}, 0
    while i < len(buf):
        (n,) = struct.unpack_from("<I", buf, i)
        i += 4
        k, _, v = buf[i : i + n].partition(b"=")
        out[k.decode()] = v
        i += n
    return out


def records(buf, i=0):
    while i + 4 <= len(buf):
        (hl,) = struct.unpack_from("<I", buf, i)
        h = fields(buf[i + 4 : i + 4 + hl])
        i += 4 + hl
        (dl,) = struct.unpack_from("<I", buf, i)
        d = buf[i + 4 : i + 4 + dl]
        i += 4 + dl
        yield h, d


def main(path, topic="/fix"):
    raw = open(path, "rb").read()
    assert raw.startswith(b"#ROSBAG V2.0\n")
    conns, msgs = {}, []

    def walk(buf):
        for h, d in records(buf):
            op = h.get("op", b"\0")[0]
            if op == 7:
                conns[struct.unpack("<I", h["conn"])[0]] = h["topic"].decode()
            elif op == 2:
                msgs.append((struct.unpack("<I", h["conn"])[0], d))
            elif op == 5:
                c = h["compression"]
                walk(bz2.decompress(d) if c == b"bz2" else d if c == b"none" else b"")

    walk(raw[13:])
    print("t_s,latitude_deg,longitude_deg,altitude_m,status")
    for conn, d in msgs:
        if conns.get(conn) != topic:
            continue
        seq, secs, nsecs, flen = struct.unpack_from("<IIII", d, 0)
        o = 16 + flen
        status, service = struct.unpack_from("<bH", d, o)
        lat, lon, alt = struct.unpack_from("<ddd", d, o + 3)
        print(f"{secs + nsecs * 1e-9:.3f},{lat:.9f},{lon:.9f},{alt:.3f},{status}")


if __name__ == "__main__":
    main(*sys.argv[1:])
