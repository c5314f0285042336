// fedctl fhe-*: keys, encryption, the worker's homomorphic product (here, or on remote
// fhe_workers with --remote), decryption, and a demo.
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <random>

#include "cli.h"
#include "common/npy.h"
#include "fhe/encryptor.h"
#include "fhe/plane_gemm.h"
#include "fhe/serialize.h"
#include "model/projection.h"
#include "participant/pool_flags.h"
#include "participant/worker_products.h"

namespace fedctl {

namespace {

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int cmd_fhe_keygen(int argc, char** argv) {
  po::options_description o("options");
  o.add_options()("out", po::value<std::string>()->required(),
                  "secret key file to write (mode 0600)")("force", "overwrite an existing file");
  return run_command("fhe-keygen", "--out SK", o, argc, argv, [](const po::variables_map& vm) {
    const auto out = vm["out"].as<std::string>();
    if (exists(out) && !vm.count("force")) {
      throw std::runtime_error(out + " exists; pass --force to overwrite a secret key");
    }
    auto ctx = fhe::Context::create();
    fhe::SecretKey::generate(ctx).save(out);
    std::printf("{\"key\": \"%s\", \"params\": \"%s\"}\n", out.c_str(), ctx->params().name);
    return 0;
  });
}

int cmd_fhe_encrypt(int argc, char** argv) {
  po::options_description o("options");
  o.add_options()("key", po::value<std::string>()->required(), "secret key file")(
      "in", po::value<std::string>()->required(), "int8 .npy matrix X, shape d_in x T")(
      "out", po::value<std::string>()->required(), "ciphertext file to write")(
      "weights", po::value<std::string>(),
      "int8 .npy W the ciphertext will meet: sets the scale from W's real norms")(
      "transpose", "with --weights: the product will be W^T X")("log2-delta", po::value<unsigned>(),
                                                                "force the scale 2^D (expert use)");
  return run_command(
      "fhe-encrypt", "--key SK --in X.npy --out X.ct [--weights W.npy [--transpose]]", o, argc,
      argv, [](const po::variables_map& vm) {
        auto ctx = fhe::Context::create();
        const auto key = fhe::SecretKey::load(ctx, vm["key"].as<std::string>());
        size_t rows = 0, cols = 0;
        const auto x = fedtools::read_npy_int8(vm["in"].as<std::string>(), &rows, &cols);
        if (rows == 0 || cols == 0) throw std::runtime_error("X is empty");
        fhe::Encryptor enc(key);
        fhe::CiphertextMatrix ct;
        if (vm.count("log2-delta")) {
          ct = enc.encrypt(x.data(), rows, cols, vm["log2-delta"].as<unsigned>());
        } else if (vm.count("weights")) {
          size_t wr = 0, wc = 0;
          const auto w = fedtools::read_npy_int8(vm["weights"].as<std::string>(), &wr, &wc);
          const bool tr = vm.count("transpose") > 0;
          if ((tr ? wr : wc) != rows) {
            throw std::runtime_error("X has " + std::to_string(rows) + " rows but W" +
                                     (tr ? "^T" : "") + " expects " + std::to_string(tr ? wr : wc));
          }
          const auto b = fhe::measure_bounds(w.data(), wr, wc, tr);
          ct = enc.encrypt(x.data(), rows, cols, b, (tr ? wc : wr) * cols);
        } else {
          ct = enc.encrypt(x.data(), rows, cols, fhe::worst_case_bounds(rows));
        }
        fhe::save_ciphertext(*ctx, ct, vm["out"].as<std::string>());
        std::printf("{\"rows\": %zu, \"cols\": %zu, \"log2_delta\": %u, \"blocks\": %zu}\n", rows,
                    cols, ct.log2_delta, ct.blocks(ctx->n()));
        return 0;
      });
}

namespace {

// fhe-matmul --remote: the product computed by fhe_workers (participant::WorkerPool).
int remote_matmul(const po::variables_map& vm) {
  if (vm.count("weights")) throw std::runtime_error("--weights does not apply to --remote");
  for (const char* flag : {"layer", "proj", "model-id"}) {
    if (!vm.count(flag)) throw std::runtime_error(std::string("--remote needs --") + flag);
  }
  participant::PoolFlags flags;
  flags.workers = vm["remote"].as<std::string>();
  flags.insecure = vm.count("insecure") > 0;
  if (vm.count("key")) flags.client_key = vm["key"].as<std::string>();
  if (vm.count("server-key")) flags.server_key = vm["server-key"].as<std::string>();
  participant::PoolOptions options;
  options.request_timeout = std::chrono::milliseconds(vm["timeout-ms"].as<unsigned>());
  auto pool = participant::connect_pool(flags, options);
  if (!pool) throw std::runtime_error(pool.error().to_string());

  auto ctx = fhe::Context::create();
  const auto ct = fhe::load_ciphertext(*ctx, vm["in"].as<std::string>());
  participant::RemoteProduct call;
  call.model_id = vm["model-id"].as<std::string>();
  call.layer = vm["layer"].as<unsigned>();
  call.kind =
      participant::to_protocol(model::parse_projection_module(vm["proj"].as<std::string>()));
  call.transpose = vm.count("transpose") > 0;
  call.switch_modulus = vm.count("switch-modulus") > 0;
  participant::WireBytes bytes;
  const auto t0 = std::chrono::steady_clock::now();
  const auto out = participant::remote_product(*pool.value(), *ctx, call, ct, 0, &bytes);
  const double s = seconds_since(t0);
  fhe::save_ciphertext(*ctx, out, vm["out"].as<std::string>());
  std::printf(
      "{\"rows\": %llu, \"cols\": %llu, \"seconds\": %.4f, \"reply_bits\": %u, "
      "\"request_bytes\": %llu, \"reply_bytes\": %llu}\n",
      static_cast<unsigned long long>(out.rows), static_cast<unsigned long long>(out.cols), s,
      out.kind == fhe::CtKind::kSwitched ? out.log2_modulus : ctx->params().log2_q,
      static_cast<unsigned long long>(bytes.request), static_cast<unsigned long long>(bytes.reply));
  return 0;
}

}  // namespace

int cmd_fhe_matmul(int argc, char** argv) {
  po::options_description o("options");
  o.add_options()                                                                            //
      ("weights", po::value<std::string>(), "int8 .npy W, shape d_out x d_in (local mode)")  //
      ("in", po::value<std::string>()->required(), "ciphertext of X")                        //
      ("out", po::value<std::string>()->required(), "ciphertext of the product to write")    //
      ("transpose", "compute W^T X instead of W X")                                          //
      ("switch-modulus",
       "modulus-switch the reply to the fewest bits that still decrypt exactly (a smaller "
       "reply; one more NTT per row on each side)")                                    //
      ("threads", po::value<int>()->default_value(0), "threads (0: all; local mode)")  //
      ("remote", po::value<std::string>(),
       "compute on fhe_workers instead: tcp://A,tcp://B (the least loaded live one serves)")  //
      ("key", po::value<std::string>(), "remote: this client's CURVE secret key PREFIX.key")  //
      ("server-key", po::value<std::string>(),
       "remote: the workers' public key W.pub (one for all, or a comma list)")          //
      ("insecure", "remote: no CURVE (loopback endpoints only)")                        //
      ("layer", po::value<unsigned>(), "remote: decoder layer of the projection")       //
      ("proj", po::value<std::string>(), "remote: q, k, v, o, gate, up or down")        //
      ("model-id", po::value<std::string>(), "remote: the model id the workers serve")  //
      ("timeout-ms", po::value<unsigned>()->default_value(300000),
       "remote: give up on a worker after this long and try another");
  return run_command(
      "fhe-matmul",
      "--weights W.npy --in X.ct --out Y.ct [--transpose] [--switch-modulus]\n"
      "       fedctl fhe-matmul --remote tcp://A,tcp://B --key PREFIX.key --server-key "
      "W.pub --model-id ID --layer L --proj q|k|v|o|gate|up|down --in X.ct --out Y.ct "
      "[--transpose] [--switch-modulus] [--insecure]",
      o, argc, argv, [](const po::variables_map& vm) {
        if (vm.count("remote")) return remote_matmul(vm);
        for (const char* flag : {"key", "server-key", "insecure", "layer", "proj", "model-id"}) {
          if (vm.count(flag)) {
            throw std::runtime_error(std::string("--") + flag + " needs --remote");
          }
        }
        if (!vm.count("weights")) throw std::runtime_error("give --weights W.npy or --remote");
        auto ctx = fhe::Context::create();
        size_t wr = 0, wc = 0;
        const auto w = fedtools::read_npy_int8(vm["weights"].as<std::string>(), &wr, &wc);
        if (wr == 0 || wc == 0) throw std::runtime_error("W is empty");
        const auto ct = fhe::load_ciphertext(*ctx, vm["in"].as<std::string>());
        const bool tr = vm.count("transpose") > 0;
        if (ct.rows != (tr ? wr : wc)) {
          throw std::runtime_error("shape mismatch: the ciphertext has " + std::to_string(ct.rows) +
                                   " rows, W" + (tr ? "^T" : "") + " has " +
                                   std::to_string(tr ? wr : wc) + " columns");
        }
        fhe::PlaneGemmOptions opts;
        opts.threads = vm["threads"].as<int>();
        fhe::PlaneGemm gemm(ctx, w.data(), wr, wc, tr, opts);
        const auto t0 = std::chrono::steady_clock::now();
        auto out = gemm.multiply(ct);
        const uint32_t bits = vm.count("switch-modulus") ? gemm.switch_reply(out) : 0;
        const double s = seconds_since(t0);
        fhe::save_ciphertext(*ctx, out, vm["out"].as<std::string>());
        std::printf(
            "{\"rows\": %llu, \"cols\": %llu, \"seconds\": %.4f, \"reply_bits\": %u, "
            "\"gemm\": \"%s\"}\n",
            static_cast<unsigned long long>(out.rows), static_cast<unsigned long long>(out.cols), s,
            bits ? bits : ctx->params().log2_q, gemm.implementation());
        return 0;
      });
}

int cmd_fhe_decrypt(int argc, char** argv) {
  po::options_description o("options");
  o.add_options()("key", po::value<std::string>()->required(), "secret key file")(
      "in", po::value<std::string>()->required(), "ciphertext file")(
      "out", po::value<std::string>()->required(), "int64 .npy to write, shape rows x T");
  return run_command("fhe-decrypt", "--key SK --in Y.ct --out Y.npy", o, argc, argv,
                     [](const po::variables_map& vm) {
                       auto ctx = fhe::Context::create();
                       const auto key = fhe::SecretKey::load(ctx, vm["key"].as<std::string>());
                       const auto ct = fhe::load_ciphertext(*ctx, vm["in"].as<std::string>());
                       const auto y = fhe::Decryptor(key).decrypt(ct);
                       fedtools::write_npy(vm["out"].as<std::string>(), fedtools::NpyType::kInt64,
                                           ct.rows, ct.cols, y.data());
                       std::printf("{\"rows\": %llu, \"cols\": %llu}\n",
                                   static_cast<unsigned long long>(ct.rows),
                                   static_cast<unsigned long long>(ct.cols));
                       return 0;
                     });
}

int cmd_fhe_demo(int argc, char** argv) {
  po::options_description o("options");
  o.add_options()("d-out", po::value<size_t>()->default_value(1024), "output features")(
      "d-in", po::value<size_t>()->default_value(1024), "input features")(
      "tokens", po::value<size_t>()->default_value(2048), "tokens T");
  return run_command(
      "fhe-demo", "[--d-out N] [--d-in N] [--tokens T]", o, argc, argv,
      [](const po::variables_map& vm) {
        const size_t d_out = vm["d-out"].as<size_t>(), d_in = vm["d-in"].as<size_t>(),
                     t = vm["tokens"].as<size_t>();
        if (!d_out || !d_in || !t || d_out * d_in > (size_t{1} << 28) ||
            d_in * t > (size_t{1} << 28)) {
          throw std::runtime_error("shape must be non-empty and at most 2^28 values per matrix");
        }
        auto ctx = fhe::Context::create();
        std::printf(
            "encrypted linear layer demo: Y = W X, W %zu x %zu int8 (public), X %zu x %zu int8 "
            "(secret)\n",
            d_out, d_in, d_in, t);
        std::printf(
            "parameters %s: N = %zu, q = 2^48 - 2^14 + 1, ternary secret, CBD(eta=21) error\n",
            ctx->params().name, ctx->n());
        // Demo data only: a seeded generator, not a source of secrets.
        std::mt19937_64 g(42);
        std::vector<int8_t> w(d_out * d_in), x(d_in * t);
        for (auto& v : w) v = static_cast<int8_t>(static_cast<int>(g() % 256) - 128);
        for (auto& v : x) v = static_cast<int8_t>(static_cast<int>(g() % 256) - 128);
        auto t0 = std::chrono::steady_clock::now();
        const auto key = fhe::SecretKey::generate(ctx);
        fhe::Encryptor enc(key);
        const auto ct = enc.encrypt(x.data(), d_in, t,
                                    fhe::measure_bounds(w.data(), d_out, d_in, false), d_out * t);
        const double t_enc = seconds_since(t0);
        std::printf("participant: encrypted X in %.3f s (scale 2^%u, %zu ciphertexts)\n", t_enc,
                    ct.log2_delta, d_in * ct.blocks(ctx->n()));
        fhe::PlaneGemm gemm(ctx, w.data(), d_out, d_in, false);
        t0 = std::chrono::steady_clock::now();
        const auto prod = gemm.multiply(ct);
        const double t_mul = seconds_since(t0);
        std::printf(
            "worker:      computed W * Enc(X) in %.3f s (%d digit planes, oneDNN %s), no key\n",
            t_mul, gemm.planes(), gemm.implementation());
        t0 = std::chrono::steady_clock::now();
        const auto y = fhe::Decryptor(key).decrypt(prod);
        const double t_dec = seconds_since(t0);
        std::printf("participant: decrypted W X in %.3f s\n", t_dec);
        size_t mismatches = 0;
        for (size_t i = 0; i < d_out; ++i) {
          for (size_t c = 0; c < t; ++c) {
            int64_t acc = 0;
            for (size_t j = 0; j < d_in; ++j) acc += int64_t{w[i * d_in + j]} * x[j * t + c];
            mismatches += (acc != y[i * t + c]);
          }
        }
        std::printf("exact: %s (%zu of %zu values differ from the plaintext int64 product)\n",
                    mismatches == 0 ? "yes" : "NO", mismatches, d_out * t);
        return mismatches == 0 ? 0 : 1;
      });
}

}  // namespace fedctl
