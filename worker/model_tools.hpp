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

// Ends a one-shot model command (infer, inspect, export) once everything is written: flushes
// stdio and the log, then leaves the process's memory to the kernel (_exit). Returning instead
// would unmap the model (tens of ms at full size) and run LibTorch's static destructors, which
// deregister every operator one by one (~70 ms): a tenth of a cold bf16 `infer`.
[[noreturn]] void end_one_shot_command(int exit_code);

}  // namespace ecgq
