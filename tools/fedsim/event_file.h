// Reading the coordinator's dashboard log (RUN/events.jsonl, one JSON object per line) from
// outside the coordinator: what fedsim waits on and what the federation tests assert on.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace fedsim {

// The complete lines of `file` from byte `offset` on, parsed (a missing file: none; a line that
// is not JSON, e.g. one being written, is skipped).
std::vector<nlohmann::json> read_events(const std::filesystem::path& file, uint64_t offset = 0);

// The events named `name` (read_events filtered).
std::vector<nlohmann::json> events_named(const std::filesystem::path& file, const std::string& name,
                                         uint64_t offset = 0);

// The size of `file` now (0 if missing): an offset for reading only what comes later.
uint64_t event_file_size(const std::filesystem::path& file);

// Polls `file` until `done` holds for the events from `offset` on, or `timeout` has passed, or
// `give_up` (optional) returns true. Returns the events that satisfied `done`, or nullopt.
using EventsPredicate = std::function<bool(const std::vector<nlohmann::json>&)>;
std::optional<std::vector<nlohmann::json>> wait_for_events(
    const std::filesystem::path& file, const EventsPredicate& done,
    std::chrono::milliseconds timeout, uint64_t offset = 0,
    const std::function<bool()>& give_up = {});

}  // namespace fedsim
