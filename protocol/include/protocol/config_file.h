// The INI files given with --config to the coordinator, the participant and the fhe_worker.
//
// A relative path in such a file is relative to the file's own directory, not to the working
// directory: a kit of `fedctl provision` (a config file next to its keys, roster and allow-list)
// starts from anywhere. Paths given on the command line stay relative to the working directory.
// Header-only: each executable's option parsing names the keys that hold paths.
#pragma once

#include <boost/program_options/options_description.hpp>
#include <boost/program_options/parsers.hpp>
#include <filesystem>
#include <initializer_list>
#include <istream>
#include <string>
#include <string_view>

namespace protocol {

// Parses the INI text of `in` (read from the file `path`) against `options`, as
// po::parse_config_file does, and rewrites the value of every key named in `path_keys` that is a
// relative path (not empty, not absolute) as the file's directory joined with it. Throws what
// po::parse_config_file throws.
inline boost::program_options::parsed_options parse_config_file_relative(
    std::istream& in, const std::string& path,
    const boost::program_options::options_description& options,
    std::initializer_list<std::string_view> path_keys) {
  auto parsed = boost::program_options::parse_config_file(in, options);
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) return parsed;
  for (auto& option : parsed.options) {
    bool is_path = false;
    for (const auto key : path_keys) is_path = is_path || option.string_key == key;
    if (!is_path) continue;
    for (auto& value : option.value) {
      if (!value.empty() && std::filesystem::path(value).is_relative()) {
        value = (dir / value).lexically_normal().string();
      }
    }
  }
  return parsed;
}

}  // namespace protocol
