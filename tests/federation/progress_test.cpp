// The sites' progress (issue item "Progress"): the progress files a participant publishes while
// it trains (participant/progress.h), fedsim's progress line made of them (progress_line.h: one
// refreshing line on a terminal, plain lines otherwise, never garbling the round table), and a
// tiny fedsim run that publishes them and prints "progress:" lines only when it lasts longer than
// their period.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <iterator>
#include <thread>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "participant/cli.h"
#include "participant/progress.h"
#include "progress_line.h"
#include "test_support/run.h"

namespace {

namespace fs = std::filesystem;
using participant::TrainingProgress;

fedsim::SiteProgress site(const std::string& id, uint32_t round, int64_t step, int64_t steps,
                          double rate, double eta, const std::string& phase) {
  return {id, TrainingProgress{.round = round,
                               .step = step,
                               .steps = steps,
                               .tokens = step * 100,
                               .tokens_per_s = rate,
                               .eta_s = eta,
                               .phase = phase}};
}

TEST(ProgressLine, FormatsEverySiteForATerminalAndForAFile) {
  const std::vector<fedsim::SiteProgress> sites = {
      site("site-0", 3, 7, 10, 1210, 12.4, "training"),
      site("site-1", 3, 10, 10, 900, 0, "idle"),
      site("site-2", 3, 5, 10, 0, 8, "training"),
  };
  EXPECT_EQ(fedsim::progress_line(sites, true),
            "round 3 | site-0 7/10 1.2k tok/s | site-1 10/10 done | site-2 5/10 | ETA 12 s");
  EXPECT_EQ(fedsim::progress_line(sites, false),
            "progress: round 3: site-0 step 7/10 (1.2k tok/s), site-1 step 10/10 (done), site-2 "
            "step 5/10, ETA 12 s");
}

TEST(ProgressLine, ShowsUploadingAndWaitingSitesAndNoEtaWhenNoneTrains) {
  const std::vector<fedsim::SiteProgress> sites = {
      site("a", 2, 4, 4, 850, 0, "uploading"),
      site("b", 1, 4, 4, 850, 0, "idle"),  // not in round 2 (yet)
  };
  EXPECT_EQ(fedsim::progress_line(sites, true), "round 2 | a 4/4 uploading | b waiting");
  EXPECT_EQ(fedsim::progress_line(sites, false),
            "progress: round 2: a step 4/4 (uploading), b waiting");
  EXPECT_EQ(fedsim::progress_line({}, true), "");
}

TEST(ProgressLine, RatesAndDurations) {
  EXPECT_EQ(fedsim::rate_text(0), "0");
  EXPECT_EQ(fedsim::rate_text(850.2), "850");
  EXPECT_EQ(fedsim::rate_text(999.7), "1.0k");
  EXPECT_EQ(fedsim::rate_text(45'600), "45.6k");
  EXPECT_EQ(fedsim::rate_text(3.4e6), "3.4M");
  EXPECT_EQ(fedsim::eta_text(0), "0 s");
  EXPECT_EQ(fedsim::eta_text(59.4), "59 s");
  EXPECT_EQ(fedsim::eta_text(187), "3m07s");
  EXPECT_EQ(fedsim::eta_text(3720), "1h02m");
}

std::string console_output(bool tty, void (*write)(fedsim::Console&)) {
  char* data = nullptr;
  size_t size = 0;
  std::FILE* out = ::open_memstream(&data, &size);
  {
    fedsim::Console console(out, tty);
    write(console);
  }
  std::fclose(out);
  std::string text(data, size);
  std::free(data);
  return text;
}

TEST(ProgressConsole, ErasesTheLineBeforeARowAndDrawsItAgainAfter) {
  const auto scene = [](fedsim::Console& c) {
    c.print("header\n");
    c.progress("round 1 | a 1/2");
    c.progress("round 1 | a 2/2");
    c.print("    1  row\n");
    c.clear_progress();
    c.print("summary\n");
  };
  EXPECT_EQ(console_output(true, scene),
            "header\n"
            "\r\033[Kround 1 | a 1/2"
            "\r\033[Kround 1 | a 2/2"
            "\r\033[K    1  row\nround 1 | a 2/2"
            "\r\033[K"
            "summary\n");
  EXPECT_EQ(console_output(false, scene),
            "header\nround 1 | a 1/2\nround 1 | a 2/2\n    1  row\nsummary\n");
}

// On a terminal the parties' stderr goes through the console: whole lines, between erasing the
// progress line and drawing it again; a last partial line is passed on when the relay ends.
TEST(ProgressConsole, StderrRelayPassesLogLinesAroundTheProgressLine) {
  const fs::path log = fs::temp_directory_path() / ("progress_relay_" + std::to_string(::getpid()));
  std::fflush(stderr);
  const int saved = ::dup(STDERR_FILENO);
  const int file = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(file, 0);
  ASSERT_EQ(::dup2(file, STDERR_FILENO), STDERR_FILENO);
  ::close(file);
  char* data = nullptr;
  size_t size = 0;
  std::FILE* out = ::open_memstream(&data, &size);
  {
    fedsim::Console console(out, true);
    console.progress("round 1 | a 1/2");
    {
      fedsim::StderrRelay relay(console);
      std::fprintf(stderr, "a log line\n");
      std::fflush(stderr);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::fprintf(stderr, "partial");
      std::fflush(stderr);
    }
  }
  std::fclose(out);
  const std::string shown(data, size);
  std::free(data);
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::ifstream in(log);
  const std::string logged((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove(log);
  EXPECT_EQ(logged, "a log line\npartial\n");
  EXPECT_EQ(shown,
            "\r\033[Kround 1 | a 1/2"
            "\r\033[Kround 1 | a 1/2"
            "\r\033[Kround 1 | a 1/2");
}

TEST(ProgressFile, RoundTripsAndRefusesAnythingElse) {
  const TrainingProgress p{.round = 3,
                           .step = 7,
                           .steps = 10,
                           .tokens = 7168,
                           .tokens_per_s = 1210.5,
                           .eta_s = 5.5,
                           .phase = "training"};
  const std::string text = participant::progress_json(p);
  const auto back = participant::parse_progress(text);
  ASSERT_TRUE(back.has_value()) << text;
  EXPECT_EQ(back->round, 3u);
  EXPECT_EQ(back->step, 7);
  EXPECT_EQ(back->steps, 10);
  EXPECT_EQ(back->tokens, 7168);
  EXPECT_DOUBLE_EQ(back->tokens_per_s, 1210.5);
  EXPECT_DOUBLE_EQ(back->eta_s, 5.5);
  EXPECT_EQ(back->phase, "training");
  EXPECT_FALSE(participant::parse_progress(text.substr(0, text.size() / 2)));  // torn
  EXPECT_FALSE(participant::parse_progress(""));
  EXPECT_FALSE(participant::parse_progress("[1, 2]"));
  EXPECT_FALSE(participant::parse_progress(R"({"round": 1})"));
  EXPECT_FALSE(participant::parse_progress(
      R"({"round":1,"step":1,"steps":2,"tokens":3,"tokens_per_s":1,"eta_s":1,"phase":"napping"})"));
  EXPECT_FALSE(participant::parse_progress(
      R"({"round":"1","step":1,"steps":2,"tokens":3,"tokens_per_s":1,"eta_s":1,"phase":"idle"})"));
}

TEST(ProgressWatcher, LeavesOutMissingAndUnreadableFiles) {
  const fs::path dir = fs::temp_directory_path() / ("progress_watch_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "as_dir.json");
  participant::write_progress(dir / "good.json", TrainingProgress{.round = 1,
                                                                  .step = 1,
                                                                  .steps = 2,
                                                                  .tokens = 10,
                                                                  .tokens_per_s = 20,
                                                                  .eta_s = 1,
                                                                  .phase = "training"});
  std::ofstream(dir / "partial.json") << R"({"round": 1, "step")";
  std::ofstream(dir / "binary.json") << std::string("\xff\xfe\0\x01", 4);
  fedsim::Console console(stdout, false);
  fedsim::ProgressWatcher watcher({{"missing", dir / "missing.json"},
                                   {"dir", dir / "as_dir.json"},
                                   {"good", dir / "good.json"},
                                   {"partial", dir / "partial.json"},
                                   {"binary", dir / "binary.json"}},
                                  console, 1000);
  const auto sites = watcher.read();
  ASSERT_EQ(sites.size(), 1u);
  EXPECT_EQ(sites[0].site, "good");
  EXPECT_EQ(sites[0].progress.step, 1);
  watcher.finish();
  fs::remove_all(dir);
}

// The participant publishes its progress only when asked to (--progress-file or the INI key).
TEST(ProgressFile, IsOffUnlessTheParticipantIsGivenOne) {
  const auto parse = [](std::vector<std::string> extra) {
    std::vector<std::string> args = {"participant", "--site-id",   "s",  "--model",   "m", "--data",
                                     "d.jsonl",     "--state-dir", "st", "--insecure"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    std::ostringstream out;
    return participant::parse_cli(static_cast<int>(argv.size()), argv.data(), out);
  };
  EXPECT_TRUE(parse({}).config.progress_file.empty());
  EXPECT_EQ(parse({"--progress-file", "st/progress.json"}).config.progress_file,
            fs::path("st/progress.json"));
}

size_t count_lines_starting(const std::string& text, const std::string& prefix) {
  size_t n = 0;
  for (size_t at = 0; at < text.size();) {
    const size_t nl = text.find('\n', at);
    const std::string line = text.substr(at, nl == std::string::npos ? nl : nl - at);
    if (line.rfind(prefix, 0) == 0) ++n;
    if (nl == std::string::npos) break;
    at = nl + 1;
  }
  return n;
}

// A tiny plaintext federation, stdout a file: every site's progress file ends the run with all
// steps of the last round taken, and "progress:" lines appear with a period shorter than the run,
// none with a period longer than it.
TEST(ProgressFedsim, SitesPublishTheirStepsAndPlainLinesFollowThePeriod) {
  const fs::path dir =
      fs::temp_directory_path() / ("progress_fedsim_" + std::to_string(::getpid()));
  const std::string base = std::string(FEDLORA_BIN_DIR) +
                           "/fedsim --sites 2 --workers 1 --hidden 32 --layers 1 --heads 2"
                           " --kv-heads 1 --intermediate 64 --vocab 300 --records 40 --seq-len 16 --base random"
                           " --lora-rank 2 --local-steps 3 --batch-size 4 --sample-rate 0.1"
                           " --seed 5 --log-level error --backend float --rounds 2";
  fs::remove_all(dir);
  const test_support::RunResult often =
      test_support::run_stdout(base + " --run-dir " + dir.string() + " --progress-every-s 0.02");
  ASSERT_EQ(often.status, 0) << often.out;
  EXPECT_GE(count_lines_starting(often.out, "progress: round "), 1u) << often.out;
  EXPECT_EQ(often.out.find('\r'), std::string::npos) << "no terminal: no redrawn line";
  for (const char* id : {"site-0", "site-1"}) {
    const auto p = participant::read_progress(dir / "sites" / id / "progress.json");
    ASSERT_TRUE(p.has_value()) << id;
    EXPECT_EQ(p->round, 2u) << id;
    EXPECT_EQ(p->step, 3) << id;
    EXPECT_EQ(p->steps, 3) << id;
    EXPECT_GT(p->tokens, 0) << id;
    EXPECT_EQ(p->phase, "idle") << id;
  }

  fs::remove_all(dir);
  const test_support::RunResult seldom =
      test_support::run_stdout(base + " --run-dir " + dir.string() + " --progress-every-s 1000");
  ASSERT_EQ(seldom.status, 0) << seldom.out;
  EXPECT_EQ(seldom.out.find("progress:"), std::string::npos) << seldom.out;
  fs::remove_all(dir);
}

}  // namespace
