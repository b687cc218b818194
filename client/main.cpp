// ecgq: submit ECG records to an ecgq broker and inspect it.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <sstream>

#include "client/cli.hpp"
#include "client/cli_plan.hpp"
#include "common/cli_exit.hpp"
#include "common/duration.hpp"
#include "common/logging.hpp"
#include "common/text.hpp"
#include "protocol/admission.hpp"
#include "protocol/curve.hpp"
#include "protocol/endpoint.hpp"

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

// The first word that is not an option or an option's value, or "" (the command the user
// typed, checked before CLI11 would only say "A subcommand is required").
std::string command_word(int argc, char** argv) {
  static const char* const kValued[] = {"--broker",    "--service",    "--timeout",
                                        "--log-level", "--curve-cert", "--broker-key"};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.empty() || a[0] != '-') return a;
    for (const char* v : kValued)
      if (a == v) ++i;  // skip its value ("--broker=x" carries its own)
  }
  return "";
}

// The options before the command word, which every command shares.
struct GlobalOptions {
  std::string broker = "tcp://127.0.0.1:5555";
  std::string service = "ecg-fm";
  std::string timeout_text;
  std::string log_level = "warn";
  std::string curve_cert;  // own secret certificate; "" = plaintext
  std::string broker_key;  // the broker's public certificate file or Z85 key
};

void add_global_options(CLI::App& app, GlobalOptions& g) {
  app.add_option("--broker", g.broker, "broker endpoint")
      ->envname("ECGQ_BROKER")
      ->capture_default_str();
  app.add_option("--service", g.service, "service name")
      ->envname("ECGQ_SERVICE")
      ->capture_default_str();
  app.add_option("--timeout", g.timeout_text,
                 "give up when the broker is silent this long while jobs are outstanding "
                 "(submit default 60s, status default 5s)");
  app.add_option("--log-level", g.log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  app.add_option("--curve-cert", g.curve_cert,
                 "own CURVE secret certificate (ecgq keygen PATH -> PATH_secret); with "
                 "--broker-key the connection is encrypted and authenticated")
      ->envname("ECGQ_CURVE_CERT");
  app.add_option("--broker-key", g.broker_key,
                 "the broker's CURVE public certificate file, or its 40-character Z85 key")
      ->envname("ECGQ_BROKER_KEY");
}

// The client's options from the global ones (the silence timeout defaults to 60 s for submit,
// 5 s otherwise); a bad_usage error says what is wrong.
Expected<ClientOptions> client_options(const GlobalOptions& g, bool submitting) {
  RETURN_IF_ERROR(mdp::check_endpoint(g.broker, mdp::EndpointUse::Connect, "--broker"));
  ClientOptions client;
  client.broker = g.broker;
  client.service = g.service;
  client.timeout = Millis(submitting ? 60000 : 5000);
  ASSIGN_OR_RETURN(client.curve, curve::load_client_keys(g.curve_cert, g.broker_key, "--curve-cert",
                                                         "--broker-key"));
  if (!g.timeout_text.empty()) {
    auto t = parse_duration(g.timeout_text);
    if (!t) return Status(ErrorCode::BadUsage, "bad --timeout: " + t.status().message());
    if (t->count() <= 0) return Status(ErrorCode::BadUsage, "--timeout must be > 0");
    client.timeout = *t;
  }
  return client;
}

// The options of `submit` given as text, checked and converted after parsing.
struct SubmitTexts {
  std::string leads, outputs, deadline, job_timeout, wait_for_worker;
};

// Declares `submit` and its options.
CLI::App* add_submit(CLI::App& app, SubmitCommand& submit, SubmitTexts& t) {
  auto* sub =
      app.add_subcommand("submit", "submit records (files or directories); one JSON line each");
  sub->add_option(
         "paths", submit.paths,
         "records: .npy, WFDB .hea, .csv, .mat, EDF, HL7 aECG, GE MUSE or Philips XML, DICOM, "
         "SCP-ECG (docs/formats.md), or directories")
      ->required();
  sub->add_option("--fs", submit.inputs.fs, "sample rate of files without one (.npy default 500)");
  sub->add_option("--leads", t.leads,
                  "comma-separated lead names of files without names (default I..V6)");
  sub->add_option("--units", submit.inputs.units, "units of unitless files: mV (default) or uV");
  sub->add_option("--outputs", t.outputs,
                  "comma-separated: probs, logits, embedding, segments, saliency");
  sub->add_option("--window", submit.window, "jobs in flight at most")->capture_default_str();
  sub->add_option("--deadline", t.deadline, "per-job budget from broker receipt, e.g. 30s");
  sub->add_option("--job-timeout", t.job_timeout, "give up on a single job after this long");
  sub->add_option("--model-sha256", submit.inputs.model_sha256,
                  "run only on the model with this sha256 (as `ecgq status` shows it); a job no "
                  "worker can run gets model_unavailable");
  sub->add_option("--wait-for-worker", t.wait_for_worker,
                  "let jobs wait this long for a worker of the service (capped by the broker's "
                  "service_wait); without it a service nobody serves fails at once");
  sub->add_option("--missing-leads", submit.inputs.missing_leads,
                  "refuse (default): a record lacking leads that cannot be derived fails with "
                  "missing_leads; zero: those leads go to the model as zeros and the result lists "
                  "them in masked_leads (accuracy with masked leads is not validated)")
      ->check(CLI::IsMember(schema::kMissingLeadsPolicies));
  sub->add_flag("--ordered", submit.ordered, "print results in input order");
  sub->add_option("-o,--output", submit.output_path, "write the results to FILE instead of stdout");
  sub->add_option("--format", submit.format,
                  "jsonl (one JSON object per record) or csv (one row per record: path, id, "
                  "status, error_code, error_message, n_segments, model_sha256, precision, "
                  "cached, one probability column per label, top_labels = the labels with "
                  "probability >= 0.5, ';'-separated)")
      ->check(CLI::IsMember({"jsonl", "csv"}))
      ->capture_default_str();
  sub->add_option("--csv-names", submit.csv_names,
                  "label columns as the model names them (model) or in snake_case (snake)")
      ->check(CLI::IsMember({"model", "snake"}))
      ->capture_default_str();
  sub->add_flag("--per-segment", submit.per_segment,
                "also ask for and print per-segment outputs (same as adding 'segments' to "
                "--outputs; csv: one extra row per segment, numbered in the segment column)");
  sub->add_option("--plot", submit.plot_dir,
                  "write DIR/<record>.svg per ok record: the leads on ECG paper, the saliency "
                  "over them, the label probabilities and the timings");
  sub->add_option("--embeddings-out", submit.embeddings_out,
                  "write one float32 embedding row per ok record to FILE.npy ([N, E], NumPy "
                  "v1.0) and FILE.npy.index.jsonl mapping row -> {row, path, id}");
  sub->add_flag("--fail-fast", submit.fail_fast,
                "stop at the first failed record, cancelling queued jobs (exit 1)");
  sub->add_option("--resume", submit.resume_path,
                  "skip records that are done in RESULTS.jsonl (ok, or an input error such as "
                  "missing_leads that would come back) and append the others' rows to it, "
                  "keeping one row per record (implies -o RESULTS.jsonl; jsonl only)");
  sub->add_flag("--retry-errors", submit.retry_errors,
                "with --resume: also re-send records whose row is an input error");
  sub->add_option(
         "--max-record-seconds", submit.inputs.max_record_seconds,
         "refuse longer records locally (error too_long). 3600 s of 12 leads at 1000 Hz "
         "is 86.4 MB as int16 (WFDB/.mat), within the broker's 128 MiB "
         "max_message_bytes; float inputs (.npy/.csv, float64 over 64 MiB sent as float32) fit 30 "
         "min at 1000 Hz (86.4 MB)")
      ->capture_default_str();
  sub->add_flag("!--no-count", submit.count_first,
                "do not walk the inputs up front to count them (progress shows no total/ETA)");
  return sub;
}

// Declares `result`; its --outputs text goes to `outputs`.
CLI::App* add_result(CLI::App& app, ResultCommand& result, std::string& outputs) {
  auto* rs = app.add_subcommand(
      "result",
      "what the broker knows of jobs by id (mmi.job): one JSON line each, the result "
      "when finished (results stay readable for the broker's result_ttl)");
  rs->add_option("ids", result.ids, "job ids (as submit printed them)")->required();
  rs->add_option("--outputs", outputs, "outputs to print, as in submit (default probs)");
  return rs;
}

// Checks --meta KEY=VALUE pairs, then runs `keygen`.
int keygen_command(KeygenCommand& keygen, const std::vector<std::string>& meta) {
  for (const auto& m : meta) {
    const size_t eq = m.find('=');
    if (eq == std::string::npos || eq == 0) return usage_error("--meta wants KEY=VALUE, got " + m);
    keygen.metadata[m.substr(0, eq)] = m.substr(eq + 1);
  }
  return run_keygen(keygen);
}

// Declares `keygen`; its --meta values go to `meta` as written.
CLI::App* add_keygen(CLI::App& app, KeygenCommand& keygen, std::vector<std::string>& meta) {
  auto* kg = app.add_subcommand(
      "keygen", "write a CURVE certificate pair: PATH (public, share it) and PATH_secret (0600)");
  kg->add_option("path", keygen.path, "where to write the certificate pair")->required();
  kg->add_option("--meta", meta, "KEY=VALUE stored in the certificate (repeatable)");
  return kg;
}

// Declares `status`.
CLI::App* add_status(CLI::App& app, StatusCommand& status) {
  auto* st = app.add_subcommand("status", "show the broker's queues and workers (mmi.status)");
  st->add_flag("--json", status.json, "print mmi.status as JSON");
  st->add_flag("--check", status.check, "exit 0 only when the service has a live worker");
  return st;
}

// Declares `dlq`.
CLI::App* add_dlq(CLI::App& app, DlqCommand& dlq) {
  auto* dl = app.add_subcommand(
      "dlq", "jobs that exhausted the broker's max_attempts, with each attempt's worker and error");
  dl->add_flag("--json", dlq.json, "print the dead-letter list as JSON");
  return dl;
}

// Declares `convert` and its options.
CLI::App* add_convert(CLI::App& app, ConvertCommand& convert) {
  auto* cv = app.add_subcommand(
      "convert",
      "write records as float32 mV arrays with a JSON sidecar (no broker needed): "
      "DIR/<stem>.npy|.hea+.dat|.csv and DIR/<stem>.json");
  cv->add_option("inputs", convert.inputs, "records (any format ecgq reads) or directories")
      ->required();
  cv->add_option("--to", convert.to, "npy ([leads, samples] float32), wfdb (format 16) or csv")
      ->check(CLI::IsMember({"npy", "wfdb", "csv"}))
      ->capture_default_str();
  cv->add_option("--out", convert.out, "output directory (created when missing)")->required();
  cv->add_flag("--keep-identifiers", convert.keep_identifiers,
               "also write the patient's name, id and birth date to the sidecar");
  return cv;
}

// Checks and converts the options of `submit`, then runs it.
int submit_command(const CLI::App* sub, SubmitCommand& submit, SubmitTexts t,
                   ClientOptions client) {
  if (!t.job_timeout.empty()) {
    auto timeout = parse_duration(t.job_timeout);
    if (!timeout) return usage_error("bad --job-timeout: " + timeout.status().message());
    client.job_timeout = *timeout;
  }
  if (!t.wait_for_worker.empty()) {
    auto wait = parse_duration(t.wait_for_worker);
    if (!wait) return usage_error("bad --wait-for-worker: " + wait.status().message());
    client.wait_for_worker = *wait;
  }
  if (!t.deadline.empty()) {
    auto d = parse_duration(t.deadline);
    if (!d) return usage_error("bad --deadline: " + d.status().message());
    submit.inputs.deadline_ms = d->count();
  }
  if (sub->count("--fs") != 0 && !(submit.inputs.fs > 0)) return usage_error("--fs must be > 0");
  if (submit.window == 0) return usage_error("--window must be at least 1");
  if (!submit.inputs.model_sha256.empty() && !ext::is_sha256_hex(submit.inputs.model_sha256))
    return usage_error("--model-sha256 wants 64 lowercase hex digits (a model's sha256)");
  if (!(submit.inputs.max_record_seconds > 0))
    return usage_error("--max-record-seconds must be > 0");
  if (submit.retry_errors && submit.resume_path.empty())
    return usage_error("--retry-errors goes with --resume FILE");
  if (!submit.resume_path.empty()) {
    if (submit.format != "jsonl") return usage_error("--resume works with --format jsonl only");
    if (!submit.output_path.empty() && submit.output_path != submit.resume_path)
      return usage_error("--resume writes to its own file; drop -o or give the same file");
  }
  if (!t.leads.empty()) submit.inputs.leads = split_list(t.leads);
  if (submit.per_segment && !t.outputs.empty() && t.outputs.find("segments") == std::string::npos)
    t.outputs += ",segments";  // --per-segment is "segments" in --outputs
  for (const auto& o : split_list(t.outputs)) {
    bool known = false;
    for (const auto& name : schema::kOutputNames) known = known || name == o;
    if (!known) {
      return usage_error("unknown output \"" + o +
                         "\" in --outputs (expected probs, logits, embedding, segments, saliency)");
    }
    submit.inputs.outputs.push_back(o);
  }
  if (std::find(submit.inputs.outputs.begin(), submit.inputs.outputs.end(), "segments") !=
      submit.inputs.outputs.end())
    submit.per_segment = true;
  submit.client = client;
  return run_submit(submit);
}

// The end of `ecgq --help`.
const char* const kFooter =
    "Examples:\n"
    "  ecgq --broker tcp://host:5555 submit record.npy recordings/ > results.jsonl\n"
    "  ecgq --broker tcp://host:5555 --curve-cert me.cert_secret --broker-key broker.cert \\\n"
    "       submit recordings/           (CURVE: see docs/security.md)\n"
    "  ecgq submit --resume results.jsonl --embeddings-out emb.npy recordings/\n"
    "  ecgq submit --format csv -o results.csv recordings/\n"
    "  ecgq status            ecgq status --json            ecgq status --check\n"
    "  ecgq rollout ecg-fm --to SHA256     (upgrade the model; docs/operations.md)\n"
    "  ecgq plan --arrivals poisson:2/min --sweep idle-timeout=1m,15m,1h   (docs/planning.md)\n"
    "  ecgq convert --to npy --out converted/ exports/*.xml exports/*.dcm\n"
    "Exit status: 0 all records ok, 1 a record failed (or --fail-fast stopped) or the broker\n"
    "is unreachable, 2 bad usage, 130 interrupted (queued jobs are cancelled).";

// True for the words `ecgq` knows as its first argument.
bool known_command(const std::string& word) {
  for (const char* known :
       {"submit", "status", "result", "dlq", "keygen", "rollout", "plan", "convert"})
    if (word == known) return true;
  return false;
}

// Declares `rollout` and its options.
CLI::App* add_rollout(CLI::App& app, RolloutCommand& rollout) {
  auto* ro = app.add_subcommand(
      "rollout",
      "make SERVICE serve the model with sha256 --to: its workers are admitted, the workers of "
      "the old model finish their jobs, get no new ones, and leave (mmi.rollout)");
  ro->add_option("service", rollout.service, "the service to move")->required();
  ro->add_option("--to", rollout.to, "the new model's sha256 (64 hex digits)")->required();
  return ro;
}

// Checks the options of `rollout`, then runs it.
int rollout_command(RolloutCommand& rollout, ClientOptions client) {
  if (!ext::is_sha256_hex(rollout.to))
    return usage_error("--to wants the new model's sha256: 64 lowercase hex digits");
  rollout.client = std::move(client);
  return run_rollout(rollout);
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"ecgq: run ECG-FM on ECG records through an ecgq broker"};
  app.set_version_flag("--version", std::string("ecgq ") + ECGQ_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  app.footer(kFooter);

  GlobalOptions global;
  add_global_options(app, global);

  SubmitCommand submit;
  SubmitTexts submit_texts;
  CLI::App* sub = add_submit(app, submit, submit_texts);

  ResultCommand result_cmd;
  std::string result_outputs;
  CLI::App* rs = add_result(app, result_cmd, result_outputs);

  KeygenCommand keygen;
  std::vector<std::string> keygen_meta;
  CLI::App* kg = add_keygen(app, keygen, keygen_meta);

  PlanCommand plan;
  CLI::App* pl = add_plan_command(app, plan);

  ConvertCommand convert;
  CLI::App* cv = add_convert(app, convert);
  StatusCommand status;
  CLI::App* st = add_status(app, status);

  RolloutCommand rollout;
  CLI::App* ro = add_rollout(app, rollout);
  DlqCommand dlq;
  CLI::App* dl = add_dlq(app, dlq);

  if (const std::string word = command_word(argc, argv); !word.empty() && !known_command(word))
    return usage_error(
        "unknown command '" + escape_invalid_utf8(word) +
        "' (expected submit, status, result, dlq, keygen, rollout, plan or convert)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return parse_error_exit(app, e, "ecgq");
  }
  init_logging("ecgq", global.log_level);
  if (kg->parsed()) return keygen_command(keygen, keygen_meta);
  if (cv->parsed()) return run_convert(convert);
  auto options = client_options(global, sub->parsed());
  if (!options) return usage_error(options.status().message());
  const ClientOptions& client = *options;

  if (pl->parsed()) {
    plan.client = client;
    return run_plan(plan);
  }
  if (rs->parsed()) {
    result_cmd.client = client;
    result_cmd.outputs = split_list(result_outputs);
    return run_result(result_cmd);
  }
  if (st->parsed()) {
    status.client = client;
    return run_status(status);
  }
  if (ro->parsed()) return rollout_command(rollout, client);
  if (dl->parsed()) {
    dlq.client = client;
    return run_dlq(dlq);
  }

  return submit_command(sub, submit, submit_texts, client);
}

int main(int argc, char** argv) {
  // Nothing may reach std::terminate: a runtime failure is one line and exit 1.
  try {
    return run_cli(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ecgq: error: %s\n", escape_invalid_utf8(e.what()).c_str());
    return kExitFailed;
  }
}
