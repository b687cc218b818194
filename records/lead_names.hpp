// Mapping ECG channel names (as headers and files spell them) onto the 12 model leads.
#pragma once

#include <string>

namespace ecgq {

// Index 0..11 into kModelLeads (I II III aVR aVL aVF V1..V6) of a channel name, or -1.
// Case-insensitive; also accepts "Lead II"-style prefixes and the European names D1-D3 / DI-DIII
// (limb leads) and C1-C6 (chest leads).
int model_lead_index(const std::string& name);

// Why a channel that model_lead_index() rejects is not used, for Preprocessed::ignored_channels.
std::string unused_channel_reason(const std::string& name);

// `name` with surrounding whitespace removed and ASCII letters lowered.
std::string lower_trimmed(const std::string& name);

}  // namespace ecgq
