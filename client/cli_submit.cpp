// `ecgq submit`: stream records through the broker and print one JSON line (or CSV row) per
// record, with embeddings, resume, fail-fast and progress.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <unordered_set>

#include "client/batch.hpp"
#include "client/cli.hpp"
#include "client/csv_output.hpp"
#include "client/json_output.hpp"
#include "client/npy_rows.hpp"
#include "client/plot_svg.hpp"
#include "client/progress.hpp"
#include "client/resume.hpp"
#include "common/text.hpp"
#include "records/record_discovery.hpp"

namespace ecgq::client {

namespace {

volatile std::sig_atomic_t g_interrupts = 0;

void on_sigint(int) {
  // The first Ctrl-C cancels cleanly; a second one means "now".
  if (++g_interrupts > 1) _exit(kExitInterrupted);
}

// Installs the SIGINT handler for the lifetime of a submit and restores the old one after.
class SigintGuard {
 public:
  SigintGuard() {
    g_interrupts = 0;
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_);
  }
  ~SigintGuard() { sigaction(SIGINT, &old_, nullptr); }
  SigintGuard(const SigintGuard&) = delete;
  SigintGuard& operator=(const SigintGuard&) = delete;

 private:
  struct sigaction old_ {};
};

bool has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// Adds `name` to `outputs`, keeping the model default (probs) when the list was empty.
void want(std::vector<std::string>& outputs, const std::string& name) {
  if (outputs.empty() && name != "probs") outputs.push_back("probs");
  if (!has(outputs, name)) outputs.push_back(name);
}

// The files this run writes, so that a walk over the directory holding them does not read them
// back as records (results.csv, emb.npy inside the input directory).
class OwnFiles {
 public:
  explicit OwnFiles(const std::vector<std::string>& paths) {
    for (const auto& p : paths) {
      if (p.empty()) continue;
      std::error_code ec;
      const auto c = std::filesystem::weakly_canonical(p, ec);
      if (ec) continue;
      names_.insert(c.filename().string());
      canonical_.insert(c.string());
    }
  }
  bool contains(const std::string& path) const {
    // Cheap name test first: canonicalising every path of a large walk costs syscalls.
    if (names_.count(std::filesystem::path(path).filename().string()) == 0) return false;
    std::error_code ec;
    const auto c = std::filesystem::weakly_canonical(path, ec);
    return !ec && canonical_.count(c.string()) != 0;
  }

 private:
  std::unordered_set<std::string> names_;
  std::unordered_set<std::string> canonical_;
};

// Records the walk will yield (missing roots count: each gives one error line), minus resumed
// ones and this run's own output files.
int64_t count_records(const std::vector<std::string>& roots,
                      const std::unordered_set<std::string>& done, const OwnFiles& own) {
  int64_t n = 0;
  for (const auto& root : roots) {
    std::error_code ec;
    if (!std::filesystem::exists(root, ec)) {
      ++n;
      continue;
    }
    RecordDiscovery walk({root});
    while (auto p = walk.next())
      n += done.count(escape_invalid_utf8(*p)) == 0 && !own.contains(*p) ? 1 : 0;
  }
  return n;
}

// Where the embeddings go: the .npy rows and the index lines naming each row's record.
class EmbeddingSink {
 public:
  Status open(const std::string& path) {
    RETURN_IF_ERROR(npy_.open(path));
    index_.open(path + ".index.jsonl", std::ios::out | std::ios::trunc);
    if (!index_)
      return Status(ErrorCode::IoError, "cannot write " + path + ".index.jsonl", "embeddings_out");
    return Status();
  }
  void add(const Outcome& o) {
    if (o.result.status != "ok") return;
    if (o.result.embedding.empty()) {
      ++missing_;
      return;
    }
    const int64_t row = npy_.rows();
    if (auto s = npy_.append(o.result.embedding); !s.ok()) {
      std::fprintf(stderr, "ecgq: %s: embedding not written: %s\n", o.path.c_str(),
                   s.to_string().c_str());
      return;
    }
    index_ << json_line(Json{{"row", row}, {"path", o.path}, {"id", o.result.id}}) << '\n';
  }
  Status close(const std::string& path) {
    index_.close();
    auto s = npy_.close();
    if (s.ok()) {
      std::fprintf(stderr, "ecgq: %lld embeddings of %lld values written to %s\n",
                   static_cast<long long>(npy_.rows()), static_cast<long long>(npy_.width()),
                   path.c_str());
    }
    if (missing_ > 0) {
      std::fprintf(stderr, "ecgq: %lld ok results carried no embedding\n",
                   static_cast<long long>(missing_));
    }
    return s;
  }

 private:
  NpyRowWriter npy_;
  std::ofstream index_;
  int64_t missing_ = 0;
};

// What a submit run counted besides the batch summary, for its closing lines.
struct RunFacts {
  int64_t skipped_files;      // not records, or this run's own output
  int64_t already_ok;         // passed over: the resume file has them ok or failed for good
  std::string first_failure;  // --fail-fast: the failure that stopped the run
  Status closed;              // closing the embeddings file
  double seconds;
};

// The closing lines on stderr, and the exit code.
int report(const SubmitCommand& command, const BatchSummary& summary, const RunFacts& facts) {
  if (facts.skipped_files > 0) {
    std::fprintf(stderr,
                 "ecgq: %lld files skipped (not records: signal, annotation, README, checksum or "
                 "dot files, or this run's output)\n",
                 static_cast<long long>(facts.skipped_files));
  }
  if (!command.resume_path.empty()) {
    std::fprintf(
        stderr,
        "ecgq: resume: %lld records skipped as already ok or failed for good (input errors)\n",
        static_cast<long long>(facts.already_ok));
  }
  if (summary.interrupted && g_interrupts == 0 && !facts.first_failure.empty()) {
    std::fprintf(stderr, "ecgq: --fail-fast: stopped at the first failure: %s",
                 facts.first_failure.c_str());
    if (summary.cancel) {
      std::fprintf(stderr, " (%lld queued jobs cancelled)",
                   static_cast<long long>(summary.cancel->cancelled));
    }
    std::fprintf(stderr, "\n");
    return kExitFailed;
  }
  if (summary.interrupted) {
    std::fprintf(stderr, "ecgq: interrupted: %lld records written",
                 static_cast<long long>(summary.records));
    if (summary.cancel) {
      std::fprintf(stderr, ", %lld queued jobs cancelled, %lld still running (not waited for)",
                   static_cast<long long>(summary.cancel->cancelled),
                   static_cast<long long>(summary.cancel->in_flight));
    }
    std::fprintf(stderr, "\n");
    return kExitInterrupted;
  }
  if (!summary.fatal.ok()) {
    std::fprintf(stderr, "ecgq: error: %s\n", summary.fatal.message().c_str());
    return kExitFailed;
  }
  std::fprintf(stderr, "ecgq: %lld records: %lld ok, %lld failed in %.2fs (%.1f records/s)\n",
               static_cast<long long>(summary.records), static_cast<long long>(summary.ok),
               static_cast<long long>(summary.failed), facts.seconds,
               facts.seconds > 0 ? static_cast<double>(summary.records) / facts.seconds : 0.0);
  if (!facts.closed.ok()) {
    std::fprintf(stderr, "ecgq: %s\n", facts.closed.to_string().c_str());
    return kExitFailed;
  }
  if (summary.records == 0) {
    if (!command.resume_path.empty() && facts.already_ok > 0) return kExitOk;
    std::fprintf(stderr, "ecgq: error: no records found\n");
    return kExitFailed;
  }
  return summary.failed == 0 ? kExitOk : kExitFailed;
}

// The outputs the worker is asked for: those printed (`*printed`, with segments for
// --per-segment) and more when CSV needs probs or --embeddings-out needs embeddings.
InputOptions asked_inputs(const SubmitCommand& command, std::vector<std::string>* printed) {
  *printed = command.inputs.outputs;
  if (command.per_segment) want(*printed, "segments");
  InputOptions inputs = command.inputs;
  inputs.outputs = *printed;
  if (command.format == "csv") want(inputs.outputs, "probs");
  if (!command.embeddings_out.empty()) want(inputs.outputs, "embedding");
  if (!command.plot_dir.empty()) {
    want(inputs.outputs, "probs");
    want(inputs.outputs, "saliency");
  }
  return inputs;
}

// Where the result lines go: stdout, --output, or appended to the --resume file (whose ok
// records are not sent again); nullopt (said on stderr) when a file cannot be read or opened.
struct Destination {
  ResumeState resume;
  std::string path;    // "" = stdout
  std::ofstream file;  // open on `path` when there is one
};

std::optional<Destination> destination(const SubmitCommand& command) {
  Destination d;
  d.path = command.output_path;
  if (!command.resume_path.empty()) {
    auto r = load_resume(command.resume_path, command.retry_errors);
    if (!r) {
      std::fprintf(stderr, "ecgq: --resume: %s\n", r.status().to_string().c_str());
      return std::nullopt;
    }
    d.resume = std::move(*r);
    d.path = command.resume_path;
    std::fprintf(stderr,
                 "ecgq: resume: %s: %lld records ok, %lld with input errors kept (--retry-errors "
                 "re-sends them), %lld to re-send%s\n",
                 command.resume_path.c_str(), static_cast<long long>(d.resume.ok),
                 static_cast<long long>(d.resume.permanent_errors),
                 static_cast<long long>(d.resume.to_retry),
                 d.resume.truncated_tail ? " (its cut-off last line was removed)" : "");
  }
  if (!d.path.empty()) {
    const bool append = !command.resume_path.empty();
    d.file.open(d.path, std::ios::out | (append ? std::ios::app : std::ios::trunc));
    if (!d.file) {
      std::fprintf(stderr, "ecgq: cannot write %s\n", d.path.c_str());
      return std::nullopt;
    }
  }
  return d;
}

// --plot DIR: the directory exists (made when missing); false (said on stderr) when it cannot.
bool plot_dir_ready(const std::string& dir) {
  if (dir.empty()) return true;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    std::fprintf(stderr, "ecgq: --plot: cannot create %s: %s\n", dir.c_str(), ec.message().c_str());
  return !ec;
}

// --plot DIR: the SVG of an ok record. The record is read again here: holding every in-flight
// record's samples for a plot would multiply the producer's memory by the window.
void plot(const std::string& dir, const Outcome& o) {
  if (dir.empty() || o.result.status != "ok") return;
  if (Status s = write_plot(dir, o.path, o.result); !s.ok())
    std::fprintf(stderr, "ecgq: --plot: %s\n", s.to_string().c_str());
}

}  // namespace

int run_submit(const SubmitCommand& command) {
  std::vector<std::string> printed;
  const InputOptions inputs = asked_inputs(command, &printed);
  auto dest = destination(command);
  if (!dest) return kExitFailed;
  const ResumeState& resume = dest->resume;
  const std::string& output_path = dest->path;
  std::ostream& out = output_path.empty() ? std::cout : dest->file;
  CsvWriter csv(out, command.per_segment, command.csv_names == "snake",
                command.inputs.missing_leads == "zero");
  EmbeddingSink embeddings;
  if (!command.embeddings_out.empty()) {
    if (auto s = embeddings.open(command.embeddings_out); !s.ok()) {
      std::fprintf(stderr, "ecgq: %s\n", s.to_string().c_str());
      return kExitFailed;
    }
  }

  ProgressCounts counts;
  const OwnFiles own(
      {output_path, command.embeddings_out,
       command.embeddings_out.empty() ? "" : command.embeddings_out + ".index.jsonl"});
  if (command.count_first) counts.total = count_records(command.paths, resume.done_paths, own);

  if (!plot_dir_ready(command.plot_dir)) return kExitFailed;
  Client client(command.client);
  JobSource source(command.paths, inputs);
  int64_t own_skipped = 0;
  source.set_skip([&](const std::string& p) {
    if (own.contains(p)) {
      ++own_skipped;
      return true;
    }
    return resume.done_paths.count(escape_invalid_utf8(p)) != 0;  // the file holds escaped paths
  });
  bool stop = false;
  std::string first_failure;
  BatchOptions options;
  options.window = command.window;
  options.ordered = command.ordered;
  options.interrupted = [&] { return g_interrupts > 0 || stop; };

  SigintGuard sigint;
  ProgressReporter progress;
  const auto started = std::chrono::steady_clock::now();
  BatchSummary summary = run_batch(
      client, [&] { return source.next(); }, options,
      [&](const Outcome& o) {
        if (command.format == "csv")
          csv.write(o.path, o.result);
        else
          out << json_line(result_json(o.path, o.result, printed)) << '\n' << std::flush;
        if (!command.embeddings_out.empty()) embeddings.add(o);
        plot(command.plot_dir, o);
        ++counts.done;
        if (o.result.status != "ok") {
          ++counts.failed;
          if (command.fail_fast && !stop) {
            stop = true;
            first_failure = o.path + ": " +
                            (o.result.error ? o.result.error->code + ": " + o.result.error->message
                                            : std::string("error"));
          }
        }
        progress.update(counts);
      });
  if (command.format == "csv") csv.finish();
  progress.update(counts, true);
  progress.clear();
  const Status closed =
      command.embeddings_out.empty() ? Status() : embeddings.close(command.embeddings_out);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  return report(command, summary,
                RunFacts{source.skipped_files() + own_skipped, source.passed_over() - own_skipped,
                         first_failure, closed, seconds});
}

}  // namespace ecgq::client
