// Readers of the formats hospitals and devices export: EDF/EDF+, HL7 aECG, GE MUSE XML, DICOM
// waveforms, Philips XML and SCP-ECG. Each reads the file's bytes (read_record() reads the file
// and picks the reader by content, records/record_format.hpp) and returns the record with its
// stored leads in canonical names (I, II, III, aVR, aVL, aVF, V1-V6, V3R, ...), ADC values with
// per-lead gain, baseline and units, or a bad_record / unsupported_format error saying what is
// wrong and where (section, tag, byte offset, lead). Declared sizes are checked against the file
// size before anything is allocated.
#pragma once

#include <string>

#include "common/status.hpp"
#include "records/ecg_record.hpp"

namespace ecgq {

// EDF and EDF+ (continuous): every ordinary signal at the record's highest sample rate;
// "EDF Annotations" signals and signals at other rates are left out (with a warning).
Expected<EcgRecord> read_edf(const std::string& bytes, const std::string& path);

// HL7 aECG (AnnotatedECG, urn:hl7-org:v3): the first RHYTHM series.
Expected<EcgRecord> read_hl7_aecg(const std::string& bytes, const std::string& path);

// GE MUSE XML (RestingECG): the Rhythm waveform; each lead's CRC32 is checked.
Expected<EcgRecord> read_ge_muse(const std::string& bytes, const std::string& path);

// DICOM ECG waveform objects (explicit or implicit VR little endian): the rhythm multiplex group.
Expected<EcgRecord> read_dicom(const std::string& bytes, const std::string& path);

// Philips XML (restingecgdata: SierraECG 1.03, PhilipsECG 1.04 / 1.04.01): the parsed waveforms,
// Plain, Base64 or XLI-compressed.
Expected<EcgRecord> read_philips(const std::string& bytes, const std::string& path);

// SCP-ECG v1.x / v2.x: record and section CRCs, default or custom Huffman tables (int16 without
// section 2), first- or second-difference rhythm data (section 6); with reference-beat
// subtraction and/or bimodal compression the rhythm is rebuilt from sections 4, 5 and 6 at the
// reference beat's rate.
Expected<EcgRecord> read_scp(const std::string& bytes, const std::string& path);

// The reference beat of an SCP-ECG record (section 5, as long as section 4 says, at its own
// rate): for comparing with a file's representative beat, and what ecgq adds back into a
// residual rhythm.
Expected<EcgRecord> read_scp_reference_beat(const std::string& bytes, const std::string& path);

}  // namespace ecgq
