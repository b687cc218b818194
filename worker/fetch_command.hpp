// `ecgq-worker fetch REF`: fills the checkpoint cache ahead of time (init containers, image
// builds) and prints "SHA256  PATH" (sha256sum format) on stdout.
#pragma once

namespace ecgq {

// Runs the fetch subcommand; argv[0] is the subcommand name ("fetch"), the rest its arguments.
// Returns the process exit code: 0 fetched, 1 resolve failed (reason on stderr), 2 bad usage.
int fetch_command(int argc, char** argv);

}  // namespace ecgq
