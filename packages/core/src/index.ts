/**
 * @turnwise/core: the data model of multi-turn tool-integrated reasoning and the
 * algorithm catalogue (rewards, shaping, returns, advantages, filters, losses) as
 * pure functions. Depends on effect (Schema) and @tensorflow/tfjs-core only.
 */
export * from "./advantages.js"
export * from "./component.js"
export * from "./embedding.js"
export * from "./errors.js"
export * from "./filters.js"
export * from "./kl.js"
export * from "./loss.js"
export * from "./model.js"
export * from "./returns.js"
export * from "./rewards.js"
export * from "./rng.js"
export * from "./sequence.js"
export * from "./setting.js"
export * from "./shaping.js"
export * from "./stats.js"
export * from "./tokens.js"
export * from "./toolcall.js"
export * from "./values.js"
