// The dashboard log: RUN_DIR/events.jsonl, one JSON object per line, appended and flushed per
// event. Every line has "event" (its kind) and "time" (Unix seconds, fractional) plus the
// event's fields; docs/coordinator.md lists them.
#pragma once

#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "protocol/result.h"

namespace coordinator {

class EventLog {
 public:
  // Opens (appends to) `file`.
  static base::Result<EventLog> open(const std::filesystem::path& file);

  // Writes {"event": event, "time": ..., fields...}; `fields` must be an object (or null).
  void write(std::string_view event, nlohmann::json fields = nullptr);

  // Called with every event after it is written (the coordinator keeps its recent failures for
  // fedctl status this way).
  using Observer = std::function<void(std::string_view event, const nlohmann::json& fields)>;
  void set_observer(Observer observer) { observer_ = std::move(observer); }

 private:
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  explicit EventLog(std::FILE* f) : file_(f) {}
  std::unique_ptr<std::FILE, Closer> file_;
  Observer observer_;
};

}  // namespace coordinator
