// One ECG record read from disk, whatever the format: WFDB (.hea + signal files, including the
// PhysioNet Challenge .mat files their headers name), MATLAB v4 .mat without a header, CSV, .npy.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.hpp"
#include "protocol/schema.hpp"
#include "records/wfdb.hpp"

namespace ecgq {

// What a reader cannot learn from some files, and how strict to be.
struct ReadOptions {
  double fs = 0;  // sample rate for files that carry none (.npy, headerless .mat, CSV without a
                  // time/fs column); when > 0 it also overrides a WFDB header's rate (a warning
                  // says so); a clinical file (EDF, XML, DICOM, SCP-ECG) whose own rate differs
                  // is refused (bad_request, field fs)
  std::vector<std::string> leads;  // channel names for files without names (.npy, headerless
                                   // .mat, CSV without a header row); default: the 12 model leads
                                   // when there are 12 channels
  std::string units;               // units of .npy/.mat/CSV values ("" = mV)
  wfdb::ChecksumPolicy checksums = wfdb::ChecksumPolicy::kError;  // WFDB checksum mismatches
};

// A record as read: raw samples (ADC units when `gains` is set, else physical), lead-major.
struct EcgRecord {
  std::string path;    // the file read (the header for WFDB)
  std::string name;    // record name (file stem)
  std::string format;  // "wfdb", "mat", "csv", "npy", "edf", "hl7-aecg", "ge-muse", "dicom",
                       // "philips", "scp-ecg"
  double fs = 0;
  int64_t n_samples = 0;
  std::vector<std::string> leads;  // one name per channel, as the file spells it
  std::string dtype;               // "i16", "f32" or "f64": which sample vector holds the data
  std::vector<int16_t> i16;        // [leads, n_samples] when dtype == "i16"
  std::vector<float> f32;          // [leads, n_samples] when dtype == "f32"
  std::vector<double> f64;         // [leads, n_samples] when dtype == "f64"
  std::vector<double> gains;       // per lead, ADC units per physical unit; empty = physical
  std::vector<double> baselines;   // per lead ADC baseline (empty when gains is)
  std::vector<std::string> units;  // per lead physical units as written ("mV", "uV", "NU")
  std::vector<std::string> source_labels;  // "Dx:<SNOMED code>" from Challenge headers, else the
                                           // free-text comment lines (age/sex lines left out)
  std::vector<std::string> comments;       // every non-blank header comment line
  std::vector<std::string> warnings;       // things a user may want to know (e.g. assumed names)
  std::string device;            // acquiring device as the file names it ("" when not given)
  std::string acquisition_time;  // ISO 8601 as far as the file gives it ("" when not given)
  // Patient identifiers the file carries: written by `ecgq convert` only with --keep-identifiers.
  std::string patient_name, patient_id, birth_date;

  // Number of channels.
  int64_t n_leads() const { return static_cast<int64_t>(leads.size()); }
  // Length in seconds.
  double duration_s() const { return fs > 0 ? static_cast<double>(n_samples) / fs : 0; }
  // Raw sample value of channel `lead` at `t` as double.
  double raw(int64_t lead, int64_t t) const;
};

// Reads a record: `path` is a .hea header, a .mat (via the header of the same name when there is
// one, else parsed as MATLAB v4), a .csv/.tsv/.txt, a .npy (records/record_format.hpp), a signal
// file (.dat, ...) whose header sits next to it, or a record path without extension with a .hea
// next to it.
// Errors: not_found, unsupported_format, unsupported_record, bad_record (with the path), and
// bad_request (field fs / leads) when an option the file cannot supply is missing.
Expected<EcgRecord> read_record(const std::string& path, const ReadOptions& options = {});

// Reads a WFDB record from its header file.
Expected<EcgRecord> read_wfdb_record(const std::string& header_path, const ReadOptions& options);
// Reads a MATLAB v4 .mat file directly (the `val` matrix, or its only numeric matrix).
Expected<EcgRecord> read_mat_v4(const std::string& path, const ReadOptions& options);
// Reads a CSV file (header row of lead names; optional time/fs columns and "# fs: 500" comment).
Expected<EcgRecord> read_csv_record(const std::string& path, const ReadOptions& options);
// Reads a .npy file holding [leads, samples] or [samples, leads] (f32/f64/i16, or integer types
// converted to f64).
Expected<EcgRecord> read_npy_record(const std::string& path, const ReadOptions& options);

// Channel names for a file without names: options.leads (checked against `n`), else the 12 model
// leads when n == 12 (with a warning), else a bad_request error (field leads).
Expected<std::vector<std::string>> channel_names(int64_t n, const ReadOptions& options,
                                                 std::vector<std::string>* warnings);

// A job for the record: int16 data stay i16 with per-lead gain/baseline (small on the wire),
// float data go as f32/f64; per-lead units are folded into the gains so the job is in mV.
Expected<schema::Job> job_from_record(const EcgRecord& record);

}  // namespace ecgq
