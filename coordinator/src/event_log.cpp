#include "coordinator/event_log.h"

#include <cerrno>
#include <chrono>
#include <cstring>

namespace coordinator {

base::Result<EventLog> EventLog::open(const std::filesystem::path& file) {
  std::FILE* f = std::fopen(file.c_str(), "ae");
  if (f == nullptr) {
    return base::make_error(base::Code::kIo, "cannot open ", file.string(), ": ",
                            std::strerror(errno));
  }
  return EventLog(f);
}

void EventLog::write(std::string_view event, nlohmann::json fields) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  nlohmann::json line = {{"event", event}, {"time", std::chrono::duration<double>(now).count()}};
  if (fields.is_object()) {
    for (auto& [k, v] : fields.items()) line[k] = v;
  }
  // Invalid UTF-8 from a peer's text is replaced, never thrown.
  const std::string text =
      line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::fwrite(text.data(), 1, text.size(), file_.get());
  std::fflush(file_.get());
  if (observer_) observer_(event, fields);
}

}  // namespace coordinator
