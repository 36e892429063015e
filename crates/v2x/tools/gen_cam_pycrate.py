#!/usr/bin/env python3
"""Authoring-time generator: independent CAM encodings / decodings with pycrate (PyPI 0.8.1).

    python3 -m venv /tmp/pyc && /tmp/pyc/bin/pip install pycrate==0.8.1
    /tmp/pyc/bin/python crates/v2x/tools/gen_cam_pycrate.py crates/v2x/testdata

Writes
  pycrate-cam-{a,b}.uper      CAMs encoded by pycrate (ITS_CAM_2 = CAM PDU v1.4.1, protocol 2)
  pycrate-expected.json       the field values of those CAMs and of c-its-parser-cam.uper and
                              the radiotap frame's CAM, as pycrate decodes them
Only these outputs are committed; tests never run Python.
"""
import json
import os
import sys

from pycrate_asn1dir import ITS_CAM_2 as M

CAM = M.CAM_PDU_Descriptions.CAM


def cam(station, gdt, lat, lon, speed, heading, length, width, yaw=0, acc=0):
    return {
        "header": {"protocolVersion": 2, "messageID": 2, "stationID": station},
        "cam": {
            "generationDeltaTime": gdt,
            "camParameters": {
                "basicContainer": {
                    "stationType": 5,
                    "referencePosition": {
                        "latitude": lat,
                        "longitude": lon,
                        "positionConfidenceEllipse": {"semiMajorConfidence": 150, "semiMinorConfidence": 100, "semiMajorOrientation": 0},
                        "altitude": {"altitudeValue": 1000, "altitudeConfidence": "alt-001-00"},
                    },
                },
                "highFrequencyContainer": (
                    "basicVehicleContainerHighFrequency",
                    {
                        "heading": {"headingValue": heading, "headingConfidence": 10},
                        "speed": {"speedValue": speed, "speedConfidence": 5},
                        "driveDirection": "forward",
                        "vehicleLength": {"vehicleLengthValue": length, "vehicleLengthConfidenceIndication": "noTrailerPresent"},
                        "vehicleWidth": width,
                        "longitudinalAcceleration": {"longitudinalAccelerationValue": acc, "longitudinalAccelerationConfidence": 10},
                        "curvature": {"curvatureValue": 0, "curvatureConfidence": "onePerMeter-0-01"},
                        "curvatureCalculationMode": "yawRateUsed",
                        "yawRate": {"yawRateValue": yaw, "yawRateConfidence": "degSec-000-10"},
                    },
                ),
            },
        },
    }


def summary(v):
    bc = v["cam"]["camParameters"]["basicContainer"]["referencePosition"]
    kind, hf = v["cam"]["camParameters"]["highFrequencyContainer"]
    out = {
        "station_id": v["header"]["stationID"],
        "protocol_version": v["header"]["protocolVersion"],
        "generation_delta_time": v["cam"]["generationDeltaTime"],
        "latitude_e7": bc["latitude"],
        "longitude_e7": bc["longitude"],
    }
    if kind == "basicVehicleContainerHighFrequency":
        out.update(
            speed_cms=hf["speed"]["speedValue"],
            heading_ddeg=hf["heading"]["headingValue"],
            length_dm=hf["vehicleLength"]["vehicleLengthValue"],
            width_dm=hf["vehicleWidth"],
            yaw_rate_cdegs=hf["yawRate"]["yawRateValue"],
        )
    return out


def main(outdir):
    expected = {}
    for name, v in [
        ("pycrate-cam-a.uper", cam(1234567, 41000, 488566140, 23522190, 1389, 905, 45, 18, yaw=-150, acc=12)),
        ("pycrate-cam-b.uper", cam(4294967295, 0, -339000000, 1512000000, 0, 3600, 120, 25)),
    ]:
        CAM.set_val(v)
        b = CAM.to_uper()
        open(os.path.join(outdir, name), "wb").write(b)
        CAM.from_uper(b)
        expected[name] = summary(CAM.get_val())
    for name in ["c-its-parser-cam.uper"]:
        CAM.from_uper(open(os.path.join(outdir, name), "rb").read())
        expected[name] = summary(CAM.get_val())
    # the CAM inside the radiotap/802.11/LLC/GN/BTP frame: its last 67 bytes minus FCS
    raw = bytes.fromhex(open(os.path.join(outdir, "c-its-parser-cam-radiotap.hex")).read().strip())
    body = raw[:-4]
    # BTP-B header (4 bytes) precedes the CAM; GN payload is 67 bytes incl. BTP
    cam_bytes = body[-63:]
    CAM.from_uper(cam_bytes)
    expected["c-its-parser-cam-radiotap.hex"] = summary(CAM.get_val())
    json.dump(expected, open(os.path.join(outdir, "pycrate-expected.json"), "w"), indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
