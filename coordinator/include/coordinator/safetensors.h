// A small, strict reader and writer of safetensors files holding float32 tensors only.
//
// Why not model/'s safetensors code: the coordinator may link only protocol and privacy
// (docs/design.md §8); it holds no model, and adapters are plain named float32 tensors to it.
// This file format is simple enough that a strict dedicated reader is smaller than the
// dependency it would otherwise drag in.
//
// Format: 8-byte little-endian header length N, N bytes of JSON header, then the data. The
// header is an object {name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
// optional "__metadata__": {string: string}}. The reader refuses anything else: a length beyond
// the file, a header that is not one JSON object, a duplicate name, a dtype other than F32,
// a negative or non-integer dimension, offsets that disagree with the shape, overlap, or leave
// bytes of the data section unused, more than protocol's rank limit, an empty file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "base/result.h"
#include "coordinator/adapter.h"
#include "protocol/result.h"

namespace coordinator {

// Largest header accepted (the data section is bounded by the file size only).
constexpr uint64_t kMaxSafetensorsHeaderBytes = 64ull << 20;

base::Result<Adapter> parse_safetensors(std::span<const uint8_t> bytes);
base::Result<Adapter> read_safetensors(const std::filesystem::path& file);

// The file's bytes: tensors in the adapter's (name) order, no metadata.
std::vector<uint8_t> serialize_safetensors(const Adapter& adapter);
// Writes atomically (temporary file, fsync, rename, fsync of the directory).
base::Status write_safetensors(const std::filesystem::path& file, const Adapter& adapter);

}  // namespace coordinator
