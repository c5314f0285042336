// The INI files given with --config to the coordinator, the participant and the fhe_worker.
//
// A relative path in such a file is relative to the file's own directory, not to the working
// directory: a kit of `fedctl provision` (a config file next to its keys, roster and allow-list)
// starts from anywhere. Paths given on the command line stay relative to the working directory.
// Header-only: cli::parse (protocol/cli.h) applies it to the keys an executable names in
// Spec::path_keys.
#pragma once

#include <boost/program_options/parsers.hpp>
#include <filesystem>
#include <string>
#include <vector>

namespace protocol {

// Rewrites, in options parsed from the config file `path`, the value of every key named in
// `path_keys` that is a relative path (not empty, not absolute) as the file's directory joined
// with it.
inline void resolve_relative_paths(boost::program_options::parsed_options& parsed,
                                   const std::string& path,
                                   const std::vector<std::string>& path_keys) {
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) return;
  for (auto& option : parsed.options) {
    bool is_path = false;
    for (const auto& key : path_keys) is_path = is_path || option.string_key == key;
    if (!is_path) continue;
    for (auto& value : option.value) {
      if (!value.empty() && std::filesystem::path(value).is_relative()) {
        value = (dir / value).lexically_normal().string();
      }
    }
  }
}

}  // namespace protocol
