// Finding ECG records under files and directories, lazily, in a stable (sorted) order.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ecgq {

// Walks roots depth-first and yields one path per record, by the extension table of
// records/record_format.hpp: a WFDB header (.hea), a .npy, a .csv/.tsv, or a .mat that no header
// in its directory names. Signal files, annotations (.atr, .i, .v1, ...), .txt files (READMEs,
// RECORDS lists: a .txt record is read only when named), checksum lists and dotfiles yield nothing
// and are counted as skipped. A root that is a file is always yielded (read_record decides what it
// is). Only one directory listing is held in memory per level of nesting.
class RecordDiscovery {
 public:
  // Starts a walk over `roots` (files or directories), in the order given.
  explicit RecordDiscovery(std::vector<std::string> roots);
  ~RecordDiscovery();
  RecordDiscovery(RecordDiscovery&&) noexcept;
  RecordDiscovery& operator=(RecordDiscovery&&) noexcept;

  // The next record path, or nullopt when the walk is over.
  std::optional<std::string> next();
  // Files seen that are not records.
  int64_t skipped() const;
  // Records yielded so far.
  int64_t found() const;
  // Problems met on the way (missing roots, unreadable directories), one message each.
  const std::vector<std::string>& errors() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Every record under `roots`, in walk order (convenience for small inputs).
std::vector<std::string> discover_records(const std::vector<std::string>& roots,
                                          int64_t* skipped = nullptr,
                                          std::vector<std::string>* errors = nullptr);

}  // namespace ecgq
