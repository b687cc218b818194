// The `ecgq` command line: `submit` and `status` (client/main.cpp only parses and dispatches).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "client/client.hpp"
#include "client/job_source.hpp"

namespace ecgq::client {

// Exit codes of `ecgq`.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;         // a record failed, or the broker is unreachable
inline constexpr int kExitUsage = 2;          // bad command line
inline constexpr int kExitInterrupted = 130;  // Ctrl-C

// Everything `ecgq submit` needs.
struct SubmitCommand {
  ClientOptions client;
  InputOptions inputs;
  std::vector<std::string> paths;
  size_t window = 64;
  bool ordered = false;
  std::string output_path;          // "" = stdout
  std::string format = "jsonl";     // "jsonl" or "csv"
  std::string csv_names = "model";  // label columns: "model" (as named) or "snake" (snake_case)
  bool per_segment = false;         // ask for and print per-segment outputs
  std::string embeddings_out;       // "" = none; else a [N, E] float32 .npy plus FILE.index.jsonl
  std::string plot_dir;       // "" = none; else one SVG per ok record (leads, saliency, labels)
  bool fail_fast = false;     // stop at the first failed record (queued jobs cancelled)
  std::string resume_path;    // "" = none; skip done paths there and append to it
  bool retry_errors = false;  // with resume: re-send records with permanent input errors too
  bool count_first = true;    // walk the inputs once up front so progress knows the total
};

// Everything `ecgq status` needs.
struct StatusCommand {
  ClientOptions client;
  bool json = false;   // print mmi.status as JSON
  bool check = false;  // exit 0 only when the service has a live worker
};

// Everything `ecgq dlq` needs.
struct DlqCommand {
  ClientOptions client;
  bool json = false;  // print the dead-letter list as JSON
};

// Everything `ecgq result` needs.
struct ResultCommand {
  ClientOptions client;
  std::vector<std::string> ids;      // job ids, as submit printed them
  std::vector<std::string> outputs;  // outputs to print (empty = probs only), as in submit
};

// Everything `ecgq keygen` needs.
struct KeygenCommand {
  std::string path;                             // writes PATH (public) and PATH_secret
  std::map<std::string, std::string> metadata;  // --meta key=value, stored in the certificate
};

// Everything `ecgq rollout` needs.
struct RolloutCommand {
  ClientOptions client;
  std::string service;  // the service to move to another model
  std::string to;       // the new model's sha256
};

// Everything `ecgq convert` needs.
struct ConvertCommand {
  std::vector<std::string> inputs;  // record files or directories
  std::string to = "npy";           // npy, wfdb or csv
  std::string out;                  // output directory (created when missing)
  bool keep_identifiers = false;    // write patient name, id and birth date to the sidecar
};

// Runs `ecgq convert`: DIR/<stem>.npy|.hea+.dat|.csv and DIR/<stem>.json per record, one stderr
// line per refused input; exit 1 when any input was refused.
int run_convert(const ConvertCommand& command);

// Runs `ecgq submit`: one JSON line per record on stdout (or the output file), progress and
// summary on stderr; returns the exit code.
int run_submit(const SubmitCommand& command);
// Runs `ecgq status`; returns the exit code.
int run_status(const StatusCommand& command);
// Runs `ecgq dlq`: the broker's dead-letter list; returns the exit code.
int run_dlq(const DlqCommand& command);
// Runs `ecgq result`: exit 0 when every job finished ok, 1 otherwise.
int run_result(const ResultCommand& command);
// Runs `ecgq keygen`; returns the exit code.
int run_keygen(const KeygenCommand& command);
// Runs `ecgq rollout` (mmi.rollout): exit 0 when the broker admitted the model, 1 otherwise.
int run_rollout(const RolloutCommand& command);

}  // namespace ecgq::client
