// A record as `ecgq convert` writes it: float32 millivolts, [leads, samples], canonical lead names
// (the 12 standard leads first, in the usual order, then the others in file order), with III,
// aVR, aVL and aVF derived from I and II when the file lacks them, as the preprocessing does; and
// the writers of the three output formats.
#pragma once

#include <string>
#include <vector>

#include "common/status.hpp"
#include "records/ecg_record.hpp"

namespace ecgq {

// The converted signals.
struct MillivoltRecord {
  double fs = 0;
  int64_t n_samples = 0;
  std::vector<std::string> leads;          // canonical names, in row order
  std::vector<std::string> derived_leads;  // the rows computed from I and II
  std::vector<std::string> left_out;       // channels not in volts ("Resp (Ohm)"), not written
  std::vector<float> data;                 // [leads, n_samples], mV
};

// Converts `r`; bad_record when no channel is a voltage.
Expected<MillivoltRecord> to_millivolts(const EcgRecord& r);

// Writes DIR/STEM.npy (float32 [leads, samples]).
Status write_npy_record(const MillivoltRecord& m, const std::string& dir, const std::string& stem);
// Writes DIR/STEM.hea and DIR/STEM.dat (WFDB format 16, 1 uV per step unless a lead needs a
// coarser step to fit 16 bits).
Status write_wfdb_record(const MillivoltRecord& m, const std::string& dir, const std::string& stem);
// Writes DIR/STEM.csv: a "# fs: N" line, a header row of lead names, one row per sample (mV).
Status write_csv_record(const MillivoltRecord& m, const std::string& dir, const std::string& stem);

}  // namespace ecgq
