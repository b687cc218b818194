#include "records/units.hpp"

#include <limits>

#include "records/lead_names.hpp"

namespace ecgq {

namespace {

struct Unit {
  const char* name;  // lower case
  double millivolts;
};

constexpr Unit kUnits[] = {
    {"", 1.0},           {"mv", 1.0},  {"uv", 1e-3}, {"\xc2\xb5v", 1e-3},  // µ (micro sign)
    {"\xce\xbcv", 1e-3},                                                   // μ (Greek mu)
    {"v", 1e3},          {"nv", 1e-6},
};

}  // namespace

double millivolts_per_unit(const std::string& units) {
  const std::string u = lower_trimmed(units);
  for (const Unit& unit : kUnits)
    if (u == unit.name) return unit.millivolts;
  return std::numeric_limits<double>::quiet_NaN();
}

const char* voltage_units_list() {
  return "mV, uV, V or nV";
}

}  // namespace ecgq
