// Keys of DP random streams that never repeat across releases.
//
// A site holds one long-lived secret seed. Every DP release (one round's delta: its Poisson
// samples, its DP-SGD noise, its participant-level noise) draws from streams keyed by
//   derive_seed(site_seed, label, context) = HMAC-SHA256(key = site_seed, label || 0x00 || context)
// (HMAC-SHA256 as a PRF, i.e. one block of HKDF-Expand with the seed as the pseudorandom key),
// where `context` identifies the release: everything the release depends on (the federation's
// run id, round, attempt, the invitation's plan and global adapter, the site's data). Two
// releases that differ in anything get independent keys, so subtracting two deltas never cancels
// their noise; only the very same release (a replay of the identical computation) gets the same
// key, and therefore the identical delta. Different labels give independent keys from one seed
// and context (e.g. the stream key and a public release id that reveals nothing about it).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "privacy/random_source.h"

namespace privacy {

// HMAC-SHA256(seed, label || 0x00 || context). Throws PrivacyError if OpenSSL fails.
Seed derive_seed(const Seed& seed, std::string_view label, std::span<const uint8_t> context);

// 64 lowercase hex digits.
std::string seed_hex(const Seed& seed);

}  // namespace privacy
