// Checkpoint references of the form hf://OWNER/REPO/PATH/IN/REPO[@REVISION] and the
// huggingface_hub cache names derived from them.
#pragma once

#include <string>

#include "common/status.hpp"

namespace ecgq {

// A file in a model repository on the hub, at a revision (branch, tag or commit).
struct HubReference {
  std::string owner;
  std::string repo;
  std::string path;               // path inside the repository, '/'-separated
  std::string revision = "main";  // as written by the user
  // "OWNER/REPO" as the hub names repositories.
  std::string repo_id() const { return owner + "/" + repo; }
  // The canonical text form "hf://OWNER/REPO/PATH@REVISION".
  std::string to_string() const;
};

// True when `reference` starts with "hf://" (otherwise it is a local path).
bool is_hub_reference(const std::string& reference);

// Parses "hf://OWNER/REPO/PATH[@REVISION]" (also the HfFileSystem spelling
// "hf://OWNER/REPO@REVISION/PATH"); bad_reference Status naming the part that is wrong.
Expected<HubReference> parse_hub_reference(const std::string& reference);

// True for a full 40-character lowercase hex commit id (a revision that never changes).
bool is_commit_hash(const std::string& revision);

// The huggingface_hub cache folder of a model repository: "models--OWNER--REPO".
std::string hub_repo_folder(const HubReference& ref);

// Percent-encodes one URL path segment (RFC 3986 unreserved characters pass through).
std::string url_encode_segment(const std::string& segment);

// "/OWNER/REPO/resolve/REVISION/PATH" with the revision encoded as one segment (so "refs/pr/1"
// becomes "refs%2Fpr%2F1") and each path segment encoded.
std::string hub_resolve_path(const HubReference& ref);

}  // namespace ecgq
