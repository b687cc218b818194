// Which precisions may run here: the CPU's bf16 matrix instructions, and int8's refusal.
#include <cpuid.h>

#include <string>

#include "common/settings.hpp"
#include "model/ecgfm_model.hpp"
#include "model/packed_linear_int8.hpp"

namespace ecgq {

std::string cpu_bf16_support() {
  if (env_flag("ECGQ_DISABLE_BF16")) return "";
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return "";
  std::string found;
  __cpuid_count(7, 0, a, b, c, d);
  const bool amx_bf16 = (d >> 22) & 1u;
  const bool avx512bw = (b >> 30) & 1u;
  __cpuid_count(7, 1, a, b, c, d);
  const bool avx512_bf16 = (a >> 5) & 1u;
  if (amx_bf16) found = "amx_bf16";
  if (avx512_bf16 && avx512bw) found += std::string(found.empty() ? "" : ",") + "avx512_bf16";
  return found;
}

Status bf16_supported() {
  if (!cpu_bf16_support().empty()) return Status::Ok();
  return Status(ErrorCode::UnsupportedModel,
                "precision bf16 needs a CPU with AVX-512 BF16 or AMX-BF16 (this one has neither, "
                "or ECGQ_DISABLE_BF16 is set); without them bf16 would run slower than fp32. "
                "Use precision fp32",
                "precision");
}

Status int8_needs_packing() {
  return Status(ErrorCode::BadConfig,
                "precision int8 runs only on packed weights (ECGQ_PACKED_WEIGHTS=0 and model "
                "exports turn packing off)",
                "precision");
}

Status precision_offered(const std::string& precision) {
  if (precision == "int8") return int8_experiment_enabled() ? Status::Ok() : int8_refused();
  if (precision == "bf16") return bf16_supported();
  if (precision == "fp32") return Status::Ok();
  return Status(ErrorCode::BadConfig, "precision '" + precision + "': expected fp32 or bf16",
                "precision");
}

Status int8_refused() {
  return Status(ErrorCode::BadConfig,
                "precision int8 is not offered: measured here, int8 projections were no faster "
                "than bf16 without split layers (1.2-1.6x the default bf16, short of 1.5x at 8 "
                "segments) and moved probabilities by up to 1.5e-2 against fp32, over the 1e-2 "
                "allowed (docs/performance.md, int8); use fp32 or bf16",
                "precision");
}

}  // namespace ecgq
