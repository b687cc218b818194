// HL7 aECG (HL7 v3 Annotated ECG, urn:hl7-org:v3): AnnotatedECG/component/series (code RHYTHM)/
// component/sequenceSet/component/sequence, one sequence per lead (code MDC_ECG_LEAD_*, value
// SLIST_PQ: origin + scale * digits) plus the time sequence (TIME_ABSOLUTE or TIME_RELATIVE, whose
// increment gives the sample interval).
#include <cmath>
#include <cstdlib>

#include "records/clinical_io.hpp"
#include "records/clinical_readers.hpp"
#include "records/xml_document.hpp"

namespace ecgq {

namespace {

std::string at_line(XmlNode n) {
  return "line " + std::to_string(xml_line(n));
}

// The first series whose code is RHYTHM (the representative beats are derived series, not read).
XmlNode rhythm_series(XmlNode root) {
  for (XmlNode comp : xml_children(root, "component"))
    for (XmlNode series : xml_children(comp, "series"))
      if (xml_attr(xml_child(series, "code"), "code") == "RHYTHM") return series;
  return nullptr;
}

// "20021122091000" -> "2002-11-22T09:10:00" (as much as is given).
std::string hl7_time(const std::string& ts) {
  std::string out;
  static const struct {
    size_t at, len;
    const char* sep;
  } kParts[] = {{0, 4, ""}, {4, 2, "-"}, {6, 2, "-"}, {8, 2, "T"}, {10, 2, ":"}, {12, 2, ":"}};
  for (const auto& p : kParts) {
    if (ts.size() < p.at + p.len) break;
    out += p.sep + ts.substr(p.at, p.len);
  }
  return out;
}

// Parses the digits of one lead.
Status parse_digits(const std::string& text, XmlNode where, const std::string& lead,
                    const std::string& path, std::vector<int32_t>* out) {
  const char* p = text.c_str();
  while (true) {
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') ++p;
    if (!*p) break;
    char* end = nullptr;
    const long v = std::strtol(p, &end, 10);
    if (end == p || v < INT32_MIN || v > INT32_MAX)
      return clinical::bad(path, at_line(where) + ", lead " + lead,
                           "digits must be whitespace-separated integers");
    out->push_back(static_cast<int32_t>(v));
    p = end;
  }
  return Status::Ok();
}

// The sample interval in seconds from the time sequence's increment.
Expected<double> sample_interval(XmlNode value, const std::string& path) {
  XmlNode inc = xml_child(value, "increment");
  double v;
  if (!inc || !clinical::parse_number(xml_attr(inc, "value"), &v) || v <= 0)
    return clinical::bad(path, at_line(value), "time sequence without a positive <increment>");
  const std::string unit = xml_attr(inc, "unit");
  if (unit == "ms") return v / 1000;
  if (unit == "us") return v / 1e6;
  if (unit != "s" && !unit.empty())
    return clinical::bad(path, at_line(inc), "increment unit '" + unit + "' (expected s or ms)");
  return v;
}

// Patient identifiers and device, from wherever the document gives them.
void hl7_details(XmlNode root, XmlNode series, EcgRecord* r) {
  if (XmlNode person = xml_find(root, "subjectDemographicPerson")) {
    std::string name = xml_path_text(person, "name");
    r->patient_name = name;
    r->birth_date = hl7_time(xml_attr(xml_child(person, "birthTime"), "value"));
  }
  r->patient_id = xml_attr(xml_path(xml_find(root, "trialSubject"), "id"), "extension");
  const std::string model =
      xml_path_text(xml_find(series, "manufacturedSeriesDevice"), "manufacturerModelName");
  const std::string maker = xml_path_text(xml_find(series, "manufacturerOrganization"), "name");
  r->device = maker.empty() ? model : model.empty() ? maker : maker + " " + model;
  XmlNode t = xml_child(series, "effectiveTime");
  std::string ts = xml_attr(xml_child(t, "low"), "value");
  if (ts.empty()) ts = xml_attr(xml_child(t, "center"), "value");
  if (ts.empty()) ts = xml_attr(xml_path(root, "effectiveTime/center"), "value");
  r->acquisition_time = hl7_time(ts);
}

}  // namespace

Expected<EcgRecord> read_hl7_aecg(const std::string& bytes, const std::string& path) {
  ASSIGN_OR_RETURN(auto doc, XmlDocument::parse(bytes, path));
  XmlNode root = doc.root();
  if (xml_name(root) != "AnnotatedECG")
    return clinical::bad(path, "root element", "<" + xml_name(root) + ">, expected <AnnotatedECG>");
  XmlNode series = rhythm_series(root);
  if (!series) return clinical::bad(path, "AnnotatedECG", "no series with code RHYTHM");
  XmlNode set = xml_path(series, "component/sequenceSet");
  if (!set) return clinical::bad(path, at_line(series), "RHYTHM series without a sequenceSet");
  EcgRecord r;
  r.path = path;
  r.name = clinical::stem_name(path);
  r.format = "hl7-aecg";
  std::vector<std::vector<int32_t>> samples;
  double interval = 0;
  for (XmlNode comp : xml_children(set, "component")) {
    XmlNode seq = xml_child(comp, "sequence");
    const std::string code = xml_attr(xml_child(seq, "code"), "code");
    XmlNode value = xml_child(seq, "value");
    if (code == "TIME_ABSOLUTE" || code == "TIME_RELATIVE") {
      ASSIGN_OR_RETURN(interval, sample_interval(value, path));
      continue;
    }
    if (code.rfind("MDC_ECG_LEAD_", 0) != 0) continue;
    const std::string lead = clinical::canonical_lead_name(code);
    double origin = 0, scale = 0;
    XmlNode o = xml_child(value, "origin"), s = xml_child(value, "scale");
    if (!clinical::parse_number(xml_attr(s, "value"), &scale) || scale == 0 ||
        (o && !clinical::parse_number(xml_attr(o, "value"), &origin)))
      return clinical::bad(path, at_line(seq) + ", lead " + lead,
                           "SLIST_PQ needs a non-zero <scale value> and a numeric <origin value>");
    const std::string units = xml_attr(s, "unit");
    if (o && !xml_attr(o, "unit").empty() && xml_attr(o, "unit") != units)
      return clinical::bad(path, at_line(o) + ", lead " + lead, "origin and scale units differ");
    std::vector<int32_t> digits;
    XmlNode d = xml_child(value, "digits");
    if (!d) return clinical::bad(path, at_line(value) + ", lead " + lead, "no <digits>");
    RETURN_IF_ERROR(parse_digits(xml_text(d), d, lead, path, &digits));
    if (!samples.empty() && digits.size() != samples[0].size())
      return clinical::bad(path, at_line(d) + ", lead " + lead,
                           std::to_string(digits.size()) + " samples where lead " + r.leads[0] +
                               " has " + std::to_string(samples[0].size()));
    samples.push_back(std::move(digits));
    r.leads.push_back(lead);
    r.gains.push_back(1.0 / scale);
    r.baselines.push_back(-origin / scale);
    r.units.push_back(units.empty() ? "uV" : units);
  }
  if (samples.empty() || samples[0].empty())
    return clinical::bad(path, at_line(set), "RHYTHM series holds no MDC_ECG_LEAD_* sequence");
  if (interval <= 0)
    return clinical::bad(path, at_line(set), "no TIME_ABSOLUTE or TIME_RELATIVE sequence");
  r.fs = std::round(1e6 / interval) / 1e6;  // 0.002 s is 500 Hz, not 499.99999999999994
  r.n_samples = static_cast<int64_t>(samples[0].size());
  clinical::store_adc(&r, samples);
  hl7_details(root, series, &r);
  return r;
}

}  // namespace ecgq
