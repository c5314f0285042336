// The text events.jsonl, RunSummary and Shutdown carry for the round's states
// (coordinator_impl.h); dashboards and tests read these strings.
#include "coordinator_impl.h"

namespace coordinator {

std::string_view drop_reason_name(DropReason reason) {
  switch (reason) {
    case DropReason::kDeadline:
      return "deadline";
    case DropReason::kDeclined:
      return "declined";
    case DropReason::kDead:
      return "dead";
    case DropReason::kUnreachable:
      return "unreachable";
    case DropReason::kRevoked:
      return "revoked";
    case DropReason::kStopped:
      return "stopped";
  }
  return "unknown";
}

std::string_view run_end_name(RunEnd end) {
  switch (end) {
    case RunEnd::kCompleted:
      return "completed";
    case RunEnd::kBudgetExhausted:
      return "budget_exhausted";
    case RunEnd::kNoParticipants:
      return "no_participants";
    case RunEnd::kRoundFailed:
      return "round_failed";
    case RunEnd::kStopped:
      return "stopped";
  }
  return "unknown";
}

}  // namespace coordinator
