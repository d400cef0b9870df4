/**
 * @turnwise/runtime: the tfjs runtime: backends, the transformer (and Hugging Face
 * formats), the KV-cached sampler, the trainer, checkpoints, and the Layers that
 * provide the DSL's Policy, Tokenizer and CheckpointStore services.
 */
export * from "./backend.js"
export * from "./tokenizer.js"
export * from "./model/types.js"
export * from "./model/config.js"
export * from "./model/linear.js"
export * from "./model/transformer.js"
export * from "./model/inference.js"
export * from "./model/hf/errors.js"
export * from "./model/hf/hf-config.js"
export * from "./model/hf/hf-weights.js"
export * from "./model/hf/hf-load.js"
export * from "./model/hf/hf-chat-template.js"
export * from "./model/hf/hf-tokenizer.js"
export * from "./model/hf/hf-save.js"
export * from "./sampler.js"
export * from "./train/adamw.js"
export * from "./train/schedule.js"
export * from "./train/batching.js"
export * from "./train/trainer.js"
export * from "./train/supervised.js"
export * from "./model/safetensors.js"
export * from "./checkpoint/store.js"
export * from "./layers/PolicyRuntime.js"
export * from "./layers/layers.js"
