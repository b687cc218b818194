// ecgq: submit ECG records to an ecgq broker and inspect it.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <sstream>

#include "client/cli.hpp"
#include "common/duration.hpp"
#include "common/logging.hpp"

using namespace ecgq;
using namespace ecgq::client;

namespace {

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto b = item.find_first_not_of(" \t");
    const auto e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "ecgq: %s (see ecgq --help)\n", message.c_str());
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ecgq: run ECG-FM on ECG records through an ecgq broker"};
  app.set_version_flag("--version", std::string("ecgq ") + ECGQ_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  app.footer(
      "Examples:\n"
      "  ecgq --broker tcp://host:5555 submit record.npy recordings/ > results.jsonl\n"
      "  ecgq status            ecgq status --json            ecgq status --check\n"
      "Exit status: 0 all records ok, 1 a record failed or the broker is unreachable,\n"
      "2 bad usage, 130 interrupted (queued jobs are cancelled).");

  std::string broker = "tcp://127.0.0.1:5555";
  std::string service = "ecg-fm";
  std::string timeout_text;
  std::string log_level = "warn";
  app.add_option("--broker", broker, "broker endpoint")
      ->envname("ECGQ_BROKER")
      ->capture_default_str();
  app.add_option("--service", service, "service name")
      ->envname("ECGQ_SERVICE")
      ->capture_default_str();
  app.add_option("--timeout", timeout_text,
                 "give up when the broker is silent this long while jobs are outstanding "
                 "(submit default 60s, status default 5s)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();

  SubmitCommand submit;
  std::string leads_text, outputs_text, deadline_text, job_timeout_text;
  auto* sub =
      app.add_subcommand("submit", "submit records (files or directories); one JSON line each");
  sub->add_option("paths", submit.paths, "records: .npy, WFDB .hea, .csv, .mat, or directories")
      ->required();
  sub->add_option("--fs", submit.inputs.fs, "sample rate of files without one (.npy default 500)");
  sub->add_option("--leads", leads_text,
                  "comma-separated lead names of files without names (default I..V6)");
  sub->add_option("--units", submit.inputs.units, "units of unitless files: mV (default) or uV");
  sub->add_option("--outputs", outputs_text,
                  "comma-separated: probs, logits, embedding, segments, saliency");
  sub->add_option("--window", submit.window, "jobs in flight at most")->capture_default_str();
  sub->add_option("--deadline", deadline_text, "per-job budget from broker receipt, e.g. 30s");
  sub->add_option("--job-timeout", job_timeout_text, "give up on a single job after this long");
  sub->add_flag("--ordered", submit.ordered, "print results in input order");
  sub->add_option("-o,--output", submit.output_path,
                  "write the JSON lines to FILE instead of stdout");

  StatusCommand status;
  auto* st = app.add_subcommand("status", "show the broker's queues and workers (mmi.status)");
  st->add_flag("--json", status.json, "print mmi.status as JSON");
  st->add_flag("--check", status.check, "exit 0 only when the service has a live worker");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  init_logging("ecgq", log_level);

  ClientOptions client;
  client.broker = broker;
  client.service = service;
  client.timeout = Millis(sub->parsed() ? 60000 : 5000);
  if (!timeout_text.empty()) {
    auto t = parse_duration(timeout_text);
    if (!t) return usage_error("bad --timeout: " + t.status().message());
    if (t->count() <= 0) return usage_error("--timeout must be > 0");
    client.timeout = *t;
  }

  if (st->parsed()) {
    status.client = client;
    return run_status(status);
  }

  if (!job_timeout_text.empty()) {
    auto t = parse_duration(job_timeout_text);
    if (!t) return usage_error("bad --job-timeout: " + t.status().message());
    client.job_timeout = *t;
  }
  if (!deadline_text.empty()) {
    auto d = parse_duration(deadline_text);
    if (!d) return usage_error("bad --deadline: " + d.status().message());
    submit.inputs.deadline_ms = d->count();
  }
  if (sub->count("--fs") != 0 && !(submit.inputs.fs > 0)) return usage_error("--fs must be > 0");
  if (submit.window == 0) return usage_error("--window must be at least 1");
  if (!leads_text.empty()) submit.inputs.leads = split_list(leads_text);
  for (const auto& o : split_list(outputs_text)) {
    bool known = false;
    for (const auto& name : schema::kOutputNames) known = known || name == o;
    if (!known) {
      return usage_error("unknown output \"" + o +
                         "\" in --outputs (expected probs, logits, embedding, segments, saliency)");
    }
    submit.inputs.outputs.push_back(o);
  }
  submit.client = client;
  return run_submit(submit);
}
