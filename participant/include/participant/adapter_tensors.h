// A LoRA adapter as the coordinator sees it: named float32 tensors in one flat vector
// (protocol::coord::AdapterTable), named as PEFT names them
// ("base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight", shape [r, d_in]).
//
// The order is the adapter's own: its projections in forward order, A then B of each. The
// numbers move unchanged in both directions, so a round trip is bit for bit.
#pragma once

#include <vector>

#include "model/llama_config.h"
#include "model/lora_params.h"
#include "protocol/coordinator_messages.h"

namespace participant {

// The tensor table of `params` (blob index 0) and its values, in the order above. Throws
// model::ModelError when `params` carries no A (a frozen-A gradient is not an adapter).
protocol::coord::AdapterTable adapter_table(const model::LoraParams& params,
                                            std::vector<float>* values);

// The values of `params` laid out as `table` says (each tensor at its offset), for an upload
// that must use the table the coordinator sent (which may order the tensors differently).
// Throws model::ModelError as read_adapter_table does.
std::vector<float> values_for_table(const protocol::coord::AdapterTable& table,
                                    const model::LoraParams& params);

// Fills `params` (already shaped: targets, rank, layers) from a table and its values: every
// tensor of `params` must appear in the table with its exact shape, and the table must hold
// nothing else. Throws model::ModelError naming the first tensor that is missing, extra or misshaped.
void read_adapter_table(const protocol::coord::AdapterTable& table, std::span<const float> values,
                        model::LoraParams& params);

}  // namespace participant
