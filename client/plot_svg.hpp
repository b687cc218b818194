// `ecgq submit --plot DIR`: one SVG per record with what /ui shows (the leads on ECG paper at their
// time scale, the saliency overlay, the segments, the label probabilities sorted with the 0.5
// threshold, the timings), for batch users who want to look at a few results.
#pragma once

#include <string>

#include "common/status.hpp"
#include "protocol/schema.hpp"
#include "records/preprocess.hpp"

namespace ecgq::client {

// The SVG document of one record (samples in physical units) and its result.
std::string plot_svg(const std::string& path, const RawEcg& record, const schema::Result& result);

// Writes DIR/<name>.svg for the record read from `path` again (the name: the path with
// separators replaced, so records of different folders do not collide).
Status write_plot(const std::string& dir, const std::string& path, const schema::Result& result);

}  // namespace ecgq::client
