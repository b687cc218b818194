// Offline model tools behind `ecgq-worker infer` and `ecgq-worker inspect` (torch-free: they go
// through the Model interface).
#pragma once

namespace ecgq {

// `infer --checkpoint PATH --input X.npy --out DIR [--threads N] [--saliency]`: runs preprocessed
// segments float32 [N, 12, 2500] and writes encoder_out.npy, embedding.npy and, for classifiers,
// logits.npy, probs.npy and labels.txt into DIR. argv[0] is "infer". Returns the exit code:
// 0 ok, 1 failure (one line on stderr), 2 bad usage.
int infer_command(int argc, char** argv);

// `inspect --checkpoint PATH [--threads N]`: loads the checkpoint and prints kind, variant,
// architecture, parameter count, labels, skipped parts, load time and peak RSS. Exit codes as
// infer_command.
int inspect_command(int argc, char** argv);

}  // namespace ecgq
