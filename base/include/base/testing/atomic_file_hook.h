// Test-only: a function base::AtomicFile calls when the new version is written and fsynced, just
// before the rename that puts it in place. A test sets it in a child process to kill a writer at
// the one moment a crash must not tear the file (tests/base/atomic_file_test.cpp). Production
// code never sets it; unset, commit() pays one atomic load.
#pragma once

#include <filesystem>
#include <functional>

namespace base::testing {

// `file` is the file about to be replaced (its temporary file is complete).
using BeforeRenameHook = void (*)(const std::filesystem::path& file);

// Sets the hook for the whole process (nullptr removes it) and returns the previous one.
BeforeRenameHook set_before_rename_hook(BeforeRenameHook hook);

// Runs `write` in a forked child whose hook SIGKILLs it before its first rename, and returns
// the child's waitpid() status: WIFSIGNALED with SIGKILL when the kill came, an exit status of
// 0 when `write` returned without committing anything, 1 when it threw. Call it from a
// single-threaded test (the child runs only `write`, then _exit()s).
int status_of_writer_killed_before_rename(const std::function<void()>& write);

}  // namespace base::testing
