// SCP-ECG (EN 1064 / ISO 11073-91064) reference-beat subtraction and bimodal compression: the
// QRS locations of section 4, the expansion of a bimodally compressed residual (decimated outside
// the protected zones) to the reference beat's rate, and the addition of the reference beat
// (section 5) back into the residual (section 6) at every subtraction zone of beat type 0.
// Sample numbers in section 4 are 1-based, at the reference beat's (full) rate.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ecgq::scp {

// A QRS complex whose reference beat was subtracted from samples start..end (type 0 only).
struct SubtractionZone {
  uint32_t type = 0, start = 0, fiducial = 0, end = 0;
};

// Samples start..end stored at the full rate when bimodal compression is used.
struct ProtectedZone {
  uint32_t start = 0, end = 0;
};

// Section 4: where the QRS complexes are and which samples were treated how.
struct QrsLocations {
  uint32_t reference_ms = 0;  // duration of the reference beat (type 0)
  uint32_t fiducial = 0;      // sample number of the fiducial point within the reference beat
  std::vector<SubtractionZone> subtraction;
  std::vector<ProtectedZone> protected_zones;  // empty when the section does not list them
};

// Parses section 4's body for a rhythm of `n_samples` samples; "" on success, else what is wrong
// (the QRS number and the field). Zones must lie within 1..n_samples and protected zones must be
// in order without overlap.
std::string parse_qrs_locations(std::string_view body, uint32_t n_samples, QrsLocations* out);

// How many values a bimodally compressed lead of `n_samples` samples stores: every sample of the
// protected zones, and outside them one value per `factor` samples plus the remainder as is.
size_t bimodal_stored_count(const QrsLocations& q, uint32_t n_samples, uint32_t factor);

// Expands the stored values of one lead (bimodal_stored_count of them) to `n_samples`: protected
// zones as stored; each run between them from its averages, the first and last held for half a
// step and linear in between, then the remainder samples as stored.
std::vector<int64_t> bimodal_expand(const std::vector<int32_t>& stored, const QrsLocations& q,
                                    uint32_t n_samples, uint32_t factor);

// The reference-beat sample that lines up with rhythm sample `t` (1-based) of `zone`, or -1
// when the zone reaches outside a beat of `beat_samples` samples.
int64_t reference_index(const QrsLocations& q, const SubtractionZone& zone, uint32_t t,
                        size_t beat_samples);

// Adds `beat` (one lead of the reference beat) into `rhythm` over every type-0 subtraction zone,
// fiducial on fiducial; "" on success, else which QRS reaches outside the reference beat.
std::string add_reference_beat(const QrsLocations& q, const std::vector<int64_t>& beat,
                               std::vector<int64_t>* rhythm);

}  // namespace ecgq::scp
