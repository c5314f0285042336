#include "coordinator/roster.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "protocol/keys.h"

namespace coordinator {

using protocol::ErrorCode;
using protocol::make_error;
namespace pc = protocol::coord;

namespace {

constexpr uintmax_t kMaxRosterBytes = 16u << 20;

std::vector<std::string> fields(std::string_view line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    if (j > i) out.emplace_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

bool printable(std::string_view s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return false;
    }
  }
  return true;
}

}  // namespace

base::Result<Roster> Roster::parse(std::string_view text, std::string_view source) {
  Roster r;
  int number = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t end = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto bad = [&](auto... why) {
      return base::make_error(base::Code::kInvalidArgument, source, ":", number, ": ", why...);
    };
    const auto f = fields(line);
    if (f.empty() || f[0][0] == '#') {
      if (end == text.size()) break;
      continue;
    }
    RosterEntry e;
    e.line = number;
    if (f[0] == "site") {
      e.role = pc::Role::kParticipant;
      if (f.size() != 3) return bad("a site line is `site ID KEY`");
    } else if (f[0] == "worker") {
      e.role = pc::Role::kWorker;
      if (f.size() != 4) return bad("a worker line is `worker ID KEY ENDPOINT`");
      e.endpoint = f[3];
      if (e.endpoint.size() > pc::kMaxEndpointBytes || !printable(e.endpoint)) {
        return bad("endpoint is not 1..", pc::kMaxEndpointBytes, " printable characters");
      }
    } else {
      return bad("unknown role '", f[0].substr(0, 32), "' (site or worker)");
    }
    e.id = f[1];
    if (!pc::is_site_id(e.id)) {
      return bad("id must be 1..", pc::kMaxSiteIdBytes, " characters of [A-Za-z0-9._-]");
    }
    auto key = protocol::parse_public_key(f[2], "key");
    if (!key) return bad(key.error().message);
    e.key = key.value().z85();
    if (r.by_key_.count(e.key)) {
      return bad("key of '", e.id, "' is already the key of '", r.by_key_.at(e.key).id, "' (line ",
                 r.by_key_.at(e.key).line, ")");
    }
    if (r.key_of_id_.count(e.id)) return bad("id '", e.id, "' is listed twice");
    r.key_of_id_[e.id] = e.key;
    r.by_key_[e.key] = std::move(e);
    if (end == text.size()) break;
  }
  return r;
}

base::Result<Roster> Roster::load(const std::filesystem::path& file) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec)
    return base::make_error(base::Code::kIo, "cannot read roster ", file.string(), ": ",
                            ec.message());
  if (size > kMaxRosterBytes) {
    return base::make_error(base::Code::kInvalidArgument, "roster ", file.string(), " has ", size,
                            " bytes (at most ", kMaxRosterBytes, ")");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return base::make_error(base::Code::kIo, "cannot open roster ", file.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), file.filename().string());
}

const RosterEntry* Roster::find_key(std::string_view key_z85) const {
  auto it = by_key_.find(key_z85);
  return it == by_key_.end() ? nullptr : &it->second;
}

const RosterEntry* Roster::find_id(std::string_view id) const {
  auto it = key_of_id_.find(id);
  return it == key_of_id_.end() ? nullptr : find_key(it->second);
}

protocol::AllowList Roster::allow_list(protocol::AllowList allow) const {
  for (const auto& [key, e] : by_key_) {
    allow.add(protocol::parse_public_key(key).value(), std::string(pc::role_name(e.role)) + " '" +
                                                           e.id + "' (roster line " +
                                                           std::to_string(e.line) + ")");
  }
  return allow;
}

protocol::Status check_register(const Roster& roster, std::string_view key_z85,
                                const pc::Register& r) {
  auto refuse = [](auto... why) { return make_error(ErrorCode::kUnauthorised, why...); };
  const RosterEntry* e = roster.find_key(key_z85);
  if (e == nullptr) {
    const RosterEntry* owner = roster.find_id(r.site_id);
    if (owner != nullptr) {
      return refuse("this key is not in the roster; '", r.site_id,
                    "' is bound to another key (roster line ", owner->line, ")");
    }
    return refuse("this key is not in the roster");
  }
  const std::string entry = std::string(pc::role_name(e->role)) + " '" + e->id + "' (roster line " +
                            std::to_string(e->line) + ")";
  if (r.site_id != e->id) {
    return refuse("this key is ", entry, ", it may not register as '", r.site_id, "'");
  }
  if (r.role != e->role) {
    return refuse("this key is ", entry, ", it may not register as a ", pc::role_name(r.role));
  }
  if (e->role == pc::Role::kWorker) {
    if (r.compute_endpoint != e->endpoint) {
      return refuse("worker '", e->id, "' may announce only ", e->endpoint, " (roster line ",
                    e->line, "), not ", r.compute_endpoint);
    }
    if (r.public_key != e->key) {
      return refuse("worker '", e->id, "' must announce its roster key (roster line ", e->line, ")",
                    r.public_key.empty() ? ", not an empty one" : "");
    }
  }
  return protocol::ok_status();
}

}  // namespace coordinator
