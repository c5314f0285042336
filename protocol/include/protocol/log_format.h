// The one log line format of every process (coordinator, participant, fhe_worker, fedsim's
// threads): "HH:MM:SS.mmm LEVEL [NAME] message", NAME the party (coordinator, a site id, a
// worker). Header-only; the caller links spdlog.
#pragma once

#include <spdlog/logger.h>

namespace protocol {

inline constexpr const char* kLogPattern = "%H:%M:%S.%e %^%l%$ [%n] %v";

// Gives `log` (all of its sinks) the project's line format.
inline void use_log_format(spdlog::logger& log) {
  log.set_pattern(kLogPattern);
}

}  // namespace protocol
