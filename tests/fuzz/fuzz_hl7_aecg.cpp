// libFuzzer target: ecgq::read_hl7_aecg on arbitrary bytes (seeds: tests/fuzz/corpus/fuzz_hl7_aecg,
// written by tests/fuzz/make_clinical_corpus.py). Any error is fine; a crash, a leak or an
// allocation beyond the fuzzer's limit is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "records/clinical_readers.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)ecgq::read_hl7_aecg(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  return 0;
}
