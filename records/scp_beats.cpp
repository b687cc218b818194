#include "records/scp_beats.hpp"

#include <cmath>

#include "records/clinical_io.hpp"

namespace ecgq::scp {

namespace {

std::string qrs(size_t k) {
  return "QRS " + std::to_string(k + 1) + ": ";
}

// Reads the protected zones that follow the subtraction zones (absent in files without bimodal
// compression); zones of 0..0 are "not given" and skipped.
std::string parse_protected(clinical::ByteCursor& c, size_t n_qrs, uint32_t n_samples,
                            QrsLocations* out) {
  if (c.left() < n_qrs * 8) return "";
  uint32_t last_end = 0;
  for (size_t k = 0; k < n_qrs; ++k) {
    ProtectedZone z;
    c.u(4, &z.start);
    c.u(4, &z.end);
    if (z.start == 0 && z.end == 0) continue;
    if (z.start < 1 || z.end < z.start || z.end > n_samples)
      return qrs(k) + "protected zone " + std::to_string(z.start) + "-" + std::to_string(z.end) +
             " is not within samples 1-" + std::to_string(n_samples);
    if (z.start <= last_end)
      return qrs(k) + "protected zone starting at " + std::to_string(z.start) +
             " overlaps or precedes the previous one (ending at " + std::to_string(last_end) + ")";
    last_end = z.end;
    out->protected_zones.push_back(z);
  }
  return "";
}

}  // namespace

std::string parse_qrs_locations(std::string_view body, uint32_t n_samples, QrsLocations* out) {
  clinical::ByteCursor c(body);
  uint32_t n_qrs;
  if (!c.u(2, &out->reference_ms) || !c.u(2, &out->fiducial) || !c.u(2, &n_qrs))
    return "shorter than its 6-byte header";
  if (c.left() < static_cast<size_t>(n_qrs) * 14)
    return std::to_string(n_qrs) + " QRS complexes do not fit in " + std::to_string(body.size()) +
           " bytes";
  for (uint32_t k = 0; k < n_qrs; ++k) {
    SubtractionZone z;
    c.u(2, &z.type);
    c.u(4, &z.start);
    c.u(4, &z.fiducial);
    c.u(4, &z.end);
    if (z.type == 0 &&
        (z.start < 1 || z.fiducial < z.start || z.end < z.fiducial || z.end > n_samples))
      return qrs(k) + "subtraction zone " + std::to_string(z.start) + "-" + std::to_string(z.end) +
             " (fiducial " + std::to_string(z.fiducial) + ") is not within samples 1-" +
             std::to_string(n_samples);
    out->subtraction.push_back(z);
  }
  return parse_protected(c, n_qrs, n_samples, out);
}

namespace {

// Calls run(first, last) for each stretch between protected zones and zone(first, last) for each
// protected zone, in order, over samples 1..n (inclusive bounds).
template <typename Run, typename Zone>
void walk(const QrsLocations& q, uint32_t n, Run run, Zone zone) {
  uint32_t next = 1;
  for (const ProtectedZone& z : q.protected_zones) {
    if (z.start > next) run(next, z.start - 1);
    zone(z.start, z.end);
    next = z.end + 1;
  }
  if (next <= n) run(next, n);
}

}  // namespace

size_t bimodal_stored_count(const QrsLocations& q, uint32_t n_samples, uint32_t factor) {
  size_t count = 0;
  walk(
      q, n_samples,
      [&](uint32_t a, uint32_t b) {
        const uint32_t len = b - a + 1;
        count += len / factor + len % factor;
      },
      [&](uint32_t a, uint32_t b) { count += b - a + 1; });
  return count;
}

std::vector<int64_t> bimodal_expand(const std::vector<int32_t>& stored, const QrsLocations& q,
                                    uint32_t n_samples, uint32_t factor) {
  std::vector<int64_t> out;
  out.reserve(n_samples);
  size_t in = 0;
  const int64_t half = factor / 2;
  walk(
      q, n_samples,
      [&](uint32_t a, uint32_t b) {
        const uint32_t len = b - a + 1, groups = len / factor;
        // Each stored value is the mean of `factor` samples and stands at their centre.
        for (int64_t j = 0; j < static_cast<int64_t>(groups) * factor; ++j) {
          const int64_t t = j - half;
          const int64_t k = t < 0 ? 0 : t / factor;
          if (t < 0 || k >= static_cast<int64_t>(groups) - 1) {
            out.push_back(stored[in + static_cast<size_t>(t < 0 ? 0 : groups - 1)]);
            continue;
          }
          const double v0 = stored[in + static_cast<size_t>(k)];
          const double v1 = stored[in + static_cast<size_t>(k) + 1];
          out.push_back(std::llround(v0 + (v1 - v0) * static_cast<double>(t % factor) / factor));
        }
        in += groups;
        for (uint32_t r = 0; r < len % factor; ++r) out.push_back(stored[in++]);
      },
      [&](uint32_t a, uint32_t b) {
        for (uint32_t t = a; t <= b; ++t) out.push_back(stored[in++]);
      });
  return out;
}

int64_t reference_index(const QrsLocations& q, const SubtractionZone& zone, uint32_t t,
                        size_t beat_samples) {
  const int64_t i = static_cast<int64_t>(q.fiducial) - 1 +
                    (static_cast<int64_t>(t) - static_cast<int64_t>(zone.fiducial));
  return i < 0 || i >= static_cast<int64_t>(beat_samples) ? -1 : i;
}

std::string add_reference_beat(const QrsLocations& q, const std::vector<int64_t>& beat,
                               std::vector<int64_t>* rhythm) {
  for (size_t k = 0; k < q.subtraction.size(); ++k) {
    const SubtractionZone& z = q.subtraction[k];
    if (z.type != 0) continue;
    if (reference_index(q, z, z.start, beat.size()) < 0 ||
        reference_index(q, z, z.end, beat.size()) < 0)
      return qrs(k) + "subtraction zone " + std::to_string(z.start) + "-" + std::to_string(z.end) +
             " reaches outside the " + std::to_string(beat.size()) +
             "-sample reference beat (fiducial at " + std::to_string(q.fiducial) + ")";
    for (uint32_t t = z.start; t <= z.end; ++t)
      (*rhythm)[t - 1] += beat[static_cast<size_t>(reference_index(q, z, t, beat.size()))];
  }
  return "";
}

}  // namespace ecgq::scp
