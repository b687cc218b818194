// `ecgq-worker export`: writes the compact model file of a checkpoint (docs/model-file.md).
#pragma once

namespace ecgq {

// `export --checkpoint PATH|hf://... --precision fp32|bf16 --out FILE`. argv[0] is "export".
// Returns the exit code: 0 ok, 1 failure (one line on stderr), 2 bad usage.
int export_command(int argc, char** argv);

}  // namespace ecgq
