// Voltage units as records and jobs spell them: the one table the record readers and the job
// preprocessing share.
#pragma once

#include <string>

namespace ecgq {

// Millivolts per unit of `units`: mV (or ""), uV / µV / μV, V, nV, in any case; NaN when
// `units` is not a voltage ("NU", "degC", ...).
double millivolts_per_unit(const std::string& units);

// The accepted spellings for messages: "mV, uV, V or nV".
const char* voltage_units_list();

}  // namespace ecgq
