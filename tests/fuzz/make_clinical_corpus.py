#!/usr/bin/env python3
"""Writes the seed corpora of the clinical-format fuzz targets (tests/fuzz/corpus/fuzz_edf,
fuzz_hl7_aecg, fuzz_ge_muse, fuzz_dicom): small valid files of each format, made here so that
they stay under the fuzzer's 64 KiB input limit. Run from the repository root."""
import base64, os, struct, zlib

C = "tests/fuzz/corpus"


def put(target, name, data):
    with open(os.path.join(C, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def edf(reserved, signals, records, duration):
    pad = lambda s, n: s.ljust(n)[:n]
    ns = len(signals)
    h = pad("0", 8) + pad("X M 01-JAN-1970 Anon", 80) + pad("Startdate 01-JAN-2020 X X dev", 80)
    h += "01.01.20" + "10.00.00" + pad(str(256 * (ns + 1)), 8) + pad(reserved, 44)
    h += pad(str(records), 8) + pad(str(duration), 8) + pad(str(ns), 4)
    for i, w in [(0, 16), (None, 80), (1, 8)]:
        h += "".join(pad(s[i] if i is not None else "", w) for s in signals)
    for v in ["-3276.8", "3276.7", "-32768", "32767"]:
        h += "".join(pad(v, 8) for _ in signals)
    h += "".join(pad("", 80) for _ in signals) + "".join(pad(str(s[2]), 8) for s in signals)
    h += "".join(pad("", 32) for _ in signals)
    data = b"".join(struct.pack("<%dh" % s[2], *range(s[2])) for _ in range(records) for s in signals)
    return h.encode() + data


put("fuzz_edf", "edf_plus", edf("EDF+C", [("ECG I", "uV", 20), ("EDF Annotations", "", 6), ("ECG II", "mV", 20)], 5, 0.1))
put("fuzz_edf", "edf_one_sample_records", edf("", [("I", "mV", 1), ("II", "mV", 1)], 30, 0.00125))

put("fuzz_hl7_aecg", "minimum", open("tests/data/clinical/hl7-aecg/fda_minimum_aecg.xml", "rb").read())
put("fuzz_hl7_aecg", "relative_ms", open("tests/data/clinical/hl7-aecg/fda_minimum_aecg.xml").read()
    .replace("TIME_ABSOLUTE", "TIME_RELATIVE").replace('value="0.002" unit="s"', 'value="2" unit="ms"'))


def muse(leads):
    out = ('<?xml version="1.0" encoding="ISO-8859-1"?>\n<!DOCTYPE RestingECG SYSTEM "restecg.dtd">\n'
           "<RestingECG><Waveform><WaveformType>Rhythm</WaveformType><SampleBase>500</SampleBase>"
           "<SampleExponent>0</SampleExponent>")
    for name in leads:
        raw = struct.pack("<40h", *range(-20, 20))
        out += ("<LeadData><LeadSampleCountTotal>40</LeadSampleCountTotal><LeadAmplitudeUnitsPerBit>4.88"
                "</LeadAmplitudeUnitsPerBit><LeadAmplitudeUnits>MICROVOLTS</LeadAmplitudeUnits><LeadID>%s"
                "</LeadID><LeadDataCRC32>%d</LeadDataCRC32><WaveFormData>%s</WaveFormData></LeadData>"
                % (name, zlib.crc32(raw), base64.b64encode(raw).decode()))
    return out + "</Waveform></RestingECG>\n"


put("fuzz_ge_muse", "eight_leads", muse(["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]))


def el(tag, vr, value):
    g, e = tag >> 16, tag & 0xFFFF
    if len(value) % 2:
        value += b"\0" if vr in ("UI", "OB") else b" "
    if vr in ("OB", "OW", "SQ", "UN", "UT"):
        return struct.pack("<HH2sHI", g, e, vr.encode(), 0, len(value)) + value
    return struct.pack("<HH2sH", g, e, vr.encode(), len(value)) + value


def sq(tag, items):
    body = b"".join(struct.pack("<HHI", 0xFFFE, 0xE000, len(i)) + i for i in items)
    return el(tag, "SQ", body)


chan = lambda code: (sq(0x003A0208, [el(0x00080100, "SH", code.encode())]) + el(0x003A0210, "DS", b"2.5")
                     + sq(0x003A0211, [el(0x00080100, "SH", b"uV")]))
group = (el(0x003A0005, "US", struct.pack("<H", 2)) + el(0x003A0010, "UL", struct.pack("<I", 16))
         + el(0x003A001A, "DS", b"500") + el(0x003A0020, "SH", b"RHYTHM")
         + sq(0x003A0200, [chan("5.6.3-9-1"), chan("5.6.3-9-2")]) + el(0x54001004, "US", struct.pack("<H", 16))
         + el(0x54001006, "CS", b"SS") + el(0x54001010, "OW", struct.pack("<32h", *range(32))))
put("fuzz_dicom", "explicit_two_leads",
    b"\0" * 128 + b"DICM" + el(0x00020010, "UI", b"1.2.840.10008.1.2.1")
    + el(0x00080016, "UI", b"1.2.840.10008.5.1.4.1.1.9.1.1") + sq(0x54000100, [group]))
# Regression seed: no channels and 775 million samples made the reader allocate 3.1 GB.
no_channels = (el(0x003A0005, "US", struct.pack("<H", 0)) + el(0x003A0010, "UL", struct.pack("<I", 775302709))
               + el(0x003A001A, "DS", b"500") + el(0x003A0020, "SH", b"RHYTHM") + sq(0x003A0200, [])
               + el(0x54001004, "US", struct.pack("<H", 16)) + el(0x54001006, "CS", b"SS")
               + el(0x54001010, "OW", b""))
put("fuzz_dicom", "no_channels_huge_count",
    b"\0" * 128 + b"DICM" + el(0x00020010, "UI", b"1.2.840.10008.1.2.1")
    + el(0x00080016, "UI", b"1.2.840.10008.5.1.4.1.1.9.1.1") + sq(0x54000100, [no_channels]))
